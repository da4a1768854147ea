// The spool's error paths: a read that fails is an error, never an empty
// queue or a missing message; a store that fails says why, and one failing
// commit does not fail the others of its batch.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/mount.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <random>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "relay/spool/spool.hpp"
#include "tests/relay/spool/spool_test_support.hpp"

namespace oauth_relay::relay {
namespace {

using spool_test_support::failure_code;
using spool_test_support::oldest_due;
using spool_test_support::run_op;
using spool_test_support::stored;

class spool_failure : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("spool-failure-test-" + std::to_string(std::random_device{}()));
  }
  void TearDown() override {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    std::filesystem::remove_all(dir_);
  }

  envelope sample_envelope(std::string sender = "alice@example.com") {
    envelope env;
    env.sender = std::move(sender);
    env.account = "alice@example.com";
    env.recipients = {recipient{"bob@example.org", {}}};
    return env;
  }

  // Stores one message, spilled to a file when `spilled`; returns its id.
  std::string store_one(spool& s, bool spilled = false) {
    auto draft = s.store().begin();
    const std::string id = draft->id();
    draft->append(spilled ? std::string(2 * spool_memory_limit, 'S') : std::string("x\r\n"));
    EXPECT_TRUE(stored(run_op(io_, s.store().commit(std::move(draft), sample_envelope()))));
    return id;
  }

  // Changes the database behind the spool's back, as a damaged or foreign
  // schema would.
  void exec_sql(const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ / "queue.db").c_str(), &db), SQLITE_OK);
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << error;
    sqlite3_free(error);
    sqlite3_close(db);
  }

  std::unique_ptr<spool> open() {
    return std::make_unique<spool>(dir_, io_.get_executor(), pool_.get_executor());
  }

  std::filesystem::path dir_;
  bool mounted_ = false;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_{1};
};

// The detail says what failed, for the log and the health socket.
testing::AssertionResult failed_with(const auto& result, std::string_view words,
                                     spool_errc code = spool_errc::failed) {
  if (result) return testing::AssertionFailure() << "it succeeded";
  const auto error = result.error();
  if (error.code != code)
    return testing::AssertionFailure() << "code " << static_cast<int>(error.code);
  if (error.detail.find(words) == std::string::npos)
    return testing::AssertionFailure() << "detail: " << error.detail;
  return testing::AssertionSuccess();
}

TEST_F(spool_failure, reads_of_a_broken_queue_are_errors_not_an_empty_queue) {
  auto s = open();
  store_one(*s);
  const auto later = std::numeric_limits<std::int64_t>::max();

  exec_sql("ALTER TABLE recipients RENAME TO recipients_elsewhere");
  EXPECT_TRUE(failed_with(run_op(io_, s->queue().due(oldest_due(later, 10, {}))), "no such table"));
  EXPECT_TRUE(failed_with(run_op(io_, s->admin().list(0, 10)), "no such table"));
  EXPECT_TRUE(failed_with(spool_reader(dir_).messages(), "no such table"));

  exec_sql("ALTER TABLE messages RENAME TO messages_elsewhere");
  EXPECT_TRUE(failed_with(run_op(io_, s->admin().summary()), "no such table"));
  EXPECT_TRUE(failed_with(run_op(io_, s->queue().next_due()), "no such table"));
  EXPECT_TRUE(failed_with(run_op(io_, s->admin().retry({}, true, 0)), "no such table"));

  // Repaired, the same spool answers again: its statements recover.
  exec_sql(
      "ALTER TABLE messages_elsewhere RENAME TO messages; "
      "ALTER TABLE recipients_elsewhere RENAME TO recipients;");
  EXPECT_EQ(run_op(io_, s->queue().due(oldest_due(later, 10, {}))).value().oldest.size(), 1u);
  EXPECT_EQ(run_op(io_, s->admin().summary()).value().depth, 1u);
}

TEST_F(spool_failure, a_lost_content_file_is_lost_and_a_removed_message_not_found) {
  auto s = open();
  const auto id = store_one(*s, /*spilled=*/true);
  std::filesystem::remove(dir_ / "spool" / id);

  // The row is still there: the message must not be taken for gone, and its
  // content will not come back (lost, not a read that may work later).
  EXPECT_TRUE(failed_with(run_op(io_, s->queue().content(id)), "No such file or directory",
                          spool_errc::lost));
  EXPECT_TRUE(
      failed_with(spool_reader(dir_).content(id), "No such file or directory", spool_errc::lost));

  ASSERT_EQ(run_op(io_, s->queue().remove({id})).value().changed, 1u);
  EXPECT_EQ(failure_code(run_op(io_, s->queue().content(id))), spool_errc::not_found);
  EXPECT_EQ(failure_code(spool_reader(dir_).content(id)), spool_errc::not_found);
}

TEST_F(spool_failure, a_row_without_content_is_lost) {
  auto s = open();
  const auto id = store_one(*s);
  exec_sql("DELETE FROM contents");
  EXPECT_TRUE(
      failed_with(run_op(io_, s->queue().content(id)), "names no content", spool_errc::lost));
}

TEST_F(spool_failure, a_content_file_of_another_size_is_lost) {
  auto s = open();
  const auto id = store_one(*s, /*spilled=*/true);
  const auto file = dir_ / "spool" / id;
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 1);
  EXPECT_TRUE(
      failed_with(run_op(io_, s->queue().content(id)), "bytes, not the ", spool_errc::lost));
}

TEST_F(spool_failure, a_draft_that_could_not_be_written_is_not_stored) {
  auto s = open();
  std::filesystem::remove_all(dir_ / "spool");  // the spilled content has nowhere to go
  auto draft = s->store().begin();
  draft->append(std::string(2 * spool_memory_limit, 'x'));
  auto result = run_op(io_, s->store().commit(std::move(draft), sample_envelope()));
  EXPECT_TRUE(failed_with(result, "No such file or directory"));
  EXPECT_EQ(s->messages_stored(), 0u);
  EXPECT_EQ(s->messages_received(), 0u);
  EXPECT_TRUE(spool_reader(dir_).messages().value().empty());
}

TEST_F(spool_failure, one_failing_commit_does_not_fail_the_others_of_its_batch) {
  auto s = open();
  exec_sql(
      "CREATE TRIGGER poison BEFORE INSERT ON messages WHEN NEW.sender = 'poison@example.com' "
      "BEGIN SELECT RAISE(ABORT, 'poisoned message'); END;");
  constexpr int count = 40;
  int good = 0, bad = 0;
  std::string detail;
  for (int i = 0; i < count; ++i) {
    auto draft = s->store().begin();
    draft->append("message " + std::to_string(i) + "\r\n");
    const bool poison = i % 10 == 5;
    // Spawned together: they meet in the writer's batches.
    boost::asio::co_spawn(
        io_,
        s->store().commit(std::move(draft),
                          sample_envelope(poison ? "poison@example.com" : "alice@example.com")),
        [&, poison](std::exception_ptr, spool_result<void> r) {
          if (r && !poison) ++good;
          if (!r && poison) {
            ++bad;
            detail = r.error().detail;
          }
        });
  }
  io_.restart();
  io_.run();
  EXPECT_EQ(good, count - count / 10);
  EXPECT_EQ(bad, count / 10);
  EXPECT_NE(detail.find("poisoned message"), std::string::npos) << detail;
  EXPECT_EQ(s->messages_stored(), static_cast<std::size_t>(count - count / 10));
  EXPECT_EQ(spool_reader(dir_).messages().value().size(),
            static_cast<std::size_t>(count - count / 10));
}

TEST_F(spool_failure, a_full_disk_answers_no_space_and_stores_nothing) {
  std::filesystem::create_directories(dir_);
  if (::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=2m,mode=0700") != 0) {
    GTEST_SKIP() << "needs permission to mount a small tmpfs (run as root)";
  }
  mounted_ = true;
  auto s = open();
  const auto kept = store_one(*s);
  {
    // Most of the room goes to a file of someone else's.
    std::ofstream filler(dir_ / "filler", std::ios::binary);
    filler << std::string(1536 * 1024, 'f');
  }
  // A large content no longer fits in spool/.
  auto big = s->store().begin();
  big->append(std::string(1024 * 1024, 'b'));
  EXPECT_EQ(failure_code(run_op(io_, s->store().commit(std::move(big), sample_envelope()))),
            spool_errc::no_space);
  // A small one goes to SQLite, whose log cannot grow either.
  std::filesystem::resize_file(dir_ / "filler", 0);
  std::ofstream(dir_ / "filler", std::ios::binary) << std::string(2048 * 1024 - 4096, 'f');
  int code = 0;
  for (int i = 0; i < 20 && code == 0; ++i) {
    auto small = s->store().begin();
    small->append(std::string(64 * 1024, 's'));
    auto result = run_op(io_, s->store().commit(std::move(small), sample_envelope()));
    if (!result) code = static_cast<int>(result.error().code) + 1;
  }
  EXPECT_EQ(code, static_cast<int>(spool_errc::no_space) + 1);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "spool"));  // the failed draft left nothing
  std::filesystem::remove(dir_ / "filler");
  auto left = spool_reader(dir_).messages();
  ASSERT_TRUE(stored(left));
  ASSERT_GE(left->size(), 1u);
  EXPECT_EQ(left->front().id, kept);
}

}  // namespace
}  // namespace oauth_relay::relay

namespace oauth_relay::relay {
namespace {

// Runs spool::check_later to its end; the problem it found ("" when none).
std::string checked_later(spool& s, boost::asio::io_context& io) {
  std::optional<std::string> problem;
  // The answer is posted from the blocking pool: the loop is kept waiting.
  auto guard = boost::asio::make_work_guard(io);
  s.check_later([&](const std::string& p) { problem = p; });
  io.restart();
  while (!problem) io.run_one();
  return *problem;
}

// A queue.db larger than check_at_open_limit (a backlog) opens without
// PRAGMA quick_check, so the daemon listens at once, and is checked after:
// sound, or damaged with the same words the check at open uses.
TEST_F(spool_failure, a_large_database_is_checked_after_it_opens) {
  {
    auto s = open();
    EXPECT_FALSE(s->check_deferred());
    store_one(*s);
    EXPECT_EQ(checked_later(*s, io_), "");
  }
  const std::size_t megabytes = spool::check_at_open_limit / (1024 * 1024) + 8;
  exec_sql(("CREATE TABLE filler(x); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
            "FROM n WHERE i < " +
            std::to_string(megabytes) + ") INSERT INTO filler SELECT randomblob(1048576) FROM n;")
               .c_str());
  {
    auto s = open();
    EXPECT_TRUE(s->check_deferred());
    EXPECT_EQ(checked_later(*s, io_), "");
  }
  // A page in the middle of the file (the filler's overflow chain, which
  // opening never reads) gets a next-page number past the end.
  const auto file = dir_ / "queue.db";
  const auto middle = std::filesystem::file_size(file) / 2 / 4096 * 4096;
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(middle));
    f.write("\x7f\xff\xff\xff", 4);
  }
  auto s = open();
  EXPECT_TRUE(s->check_deferred());
  const auto problem = checked_later(*s, io_);
  EXPECT_NE(problem.find(file.string() + ": the database is damaged"), std::string::npos)
      << problem;
  EXPECT_NE(problem.find(".recover"), std::string::npos) << problem;
  // The spool itself goes on: the queue's own tables are sound.
  EXPECT_EQ(run_op(io_, s->admin().summary()).value().depth, 1u);
}

}  // namespace
}  // namespace oauth_relay::relay
