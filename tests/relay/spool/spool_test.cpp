// The spool stores exactly what it is given, durably, with group commit; a
// draft that is not committed leaves nothing behind.
#include "relay/spool/spool.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/clock.hpp"
#include "db/schema.hpp"
#include "tests/relay/spool/spool_test_support.hpp"

namespace oauth_relay::relay {
namespace {

using spool_test_support::failure_code;
using spool_test_support::oldest_due;
using spool_test_support::run_op;
using spool_test_support::stored;
using spool_test_support::text_of;

class spool_test : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("spool-test-" + std::to_string(std::random_device{}()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  envelope sample_envelope() {
    envelope env;
    env.sender = "alice@example.com";
    env.account = "alice@example.com";
    env.params.body = smtp::body_type::eight_bit_mime;
    env.params.smtputf8 = true;
    env.params.ret = smtp::dsn_ret::headers;
    env.params.envid = "env+2Bid";
    recipient bob{"bob@example.org", {}};
    bob.params.notify.specified = true;
    bob.params.notify.failure = true;
    bob.params.orcpt = "rfc822;bob@example.org";
    env.recipients = {bob, recipient{"carol@example.org", {}}};
    return env;
  }

  spool_result<void> commit(spool& s, std::unique_ptr<message_draft> draft, envelope env) {
    return run_op(io_, s.store().commit(std::move(draft), std::move(env)));
  }

  // Parks alice's due mail for an hour, as the scheduler parks the mail of an
  // account that cannot send (up again at the latest at queue.lifetime);
  // how many messages. `as` spells the account (compared without case).
  std::size_t park_alice(spool& s, std::int64_t now, const char* as = "alice@example.com") {
    const delivery_queue::parking_limits five_days{5LL * 86'400'000, 0};
    return run_op(io_, s.queue().postpone(as, now + 3'600'000, five_days, "w")).value();
  }

  unsigned mode_of(const std::filesystem::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 0777;
  }

  std::filesystem::path dir_;
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_{1};  // the spool's WAL checkpoints
  boost::asio::any_io_executor blocking_ = pool_.get_executor();
};

TEST_F(spool_test, stores_content_and_envelope_exactly) {
  std::string id;
  {
    spool s(dir_, io_.get_executor(), blocking_);
    auto draft = s.store().begin();
    id = draft->id();
    draft->append("Subject: hi\r\n");
    draft->append("\r\nbody\r\n");
    EXPECT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
    EXPECT_EQ(s.messages_stored(), 1u);
  }
  spool_reader reader(dir_);
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  const auto& m = messages[0];
  EXPECT_EQ(m.id, id);
  EXPECT_EQ(m.size, 21u);
  EXPECT_EQ(m.env.sender, "alice@example.com");
  EXPECT_EQ(m.env.account, "alice@example.com");
  EXPECT_EQ(m.env.params.body, smtp::body_type::eight_bit_mime);
  EXPECT_TRUE(m.env.params.smtputf8);
  EXPECT_EQ(m.env.params.ret, smtp::dsn_ret::headers);
  EXPECT_EQ(m.env.params.envid, "env+2Bid");
  ASSERT_EQ(m.recipients.size(), 2u);
  EXPECT_EQ(m.recipients[0].rcpt.address, "bob@example.org");
  EXPECT_TRUE(m.recipients[0].rcpt.params.notify.specified);
  EXPECT_TRUE(m.recipients[0].rcpt.params.notify.failure);
  EXPECT_FALSE(m.recipients[0].rcpt.params.notify.success);
  EXPECT_EQ(m.recipients[0].rcpt.params.orcpt, "rfc822;bob@example.org");
  EXPECT_EQ(m.recipients[1].rcpt.address, "carol@example.org");
  EXPECT_EQ(m.recipients[1].status, recipient_status::pending);
  EXPECT_EQ(reader.content(id).value(), "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_EQ(failure_code(reader.content("0000000000000000")), spool_errc::not_found);
}

TEST_F(spool_test, state_is_private) {
  spool s(dir_, io_.get_executor(), blocking_);
  EXPECT_EQ(mode_of(dir_), 0700u);
  EXPECT_EQ(mode_of(dir_ / "spool"), 0700u);
  EXPECT_EQ(mode_of(dir_ / "queue.db"), 0600u);
}

TEST_F(spool_test, large_content_goes_to_a_file_and_reads_back) {
  std::string content;
  std::mt19937 random(7);
  while (content.size() < 3 * spool_memory_limit) {
    content += "line " + std::to_string(random()) + "\r\n";
  }
  std::string id;
  {
    spool s(dir_, io_.get_executor(), blocking_);
    auto draft = s.store().begin();
    id = draft->id();
    for (std::size_t at = 0; at < content.size(); at += 4000) {
      draft->append(std::string_view(content).substr(at, 4000));
    }
    EXPECT_TRUE(std::filesystem::exists(dir_ / "spool" / id));
    EXPECT_EQ(mode_of(dir_ / "spool" / id), 0600u);
    EXPECT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  spool_reader reader(dir_);
  EXPECT_EQ(reader.content(id).value(), content);
  ASSERT_EQ(reader.messages().value().size(), 1u);
  EXPECT_EQ(reader.messages().value()[0].size, content.size());
}

TEST_F(spool_test, abandoned_draft_leaves_nothing) {
  spool s(dir_, io_.get_executor(), blocking_);
  {
    auto draft = s.store().begin();
    draft->append(std::string(2 * spool_memory_limit, 'x'));
    EXPECT_FALSE(std::filesystem::is_empty(dir_ / "spool"));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "spool"));
  spool_reader reader(dir_);
  EXPECT_TRUE(reader.messages().value().empty());
}

TEST_F(spool_test, orphan_files_are_removed_at_open_and_committed_files_kept) {
  std::string kept;
  {
    spool s(dir_, io_.get_executor(), blocking_);
    auto draft = s.store().begin();
    kept = draft->id();
    draft->append(std::string(2 * spool_memory_limit, 'k'));
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  std::ofstream(dir_ / "spool" / "deadbeefdeadbeef") << "half a message";
  spool s(dir_, io_.get_executor(), blocking_);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "spool" / "deadbeefdeadbeef"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / "spool" / kept));
}

TEST_F(spool_test, concurrent_commits_are_all_stored) {
  constexpr int count = 300;
  int stored_count = 0, completed = 0;
  {
    spool s(dir_, io_.get_executor(), blocking_);
    for (int i = 0; i < count; ++i) {
      auto draft = s.store().begin();
      draft->append("message " + std::to_string(i) + "\r\n");
      boost::asio::co_spawn(io_, s.store().commit(std::move(draft), sample_envelope()),
                            [&](std::exception_ptr, spool_result<void> r) {
                              ++completed;
                              if (r) ++stored_count;
                            });
    }
    io_.run();
    EXPECT_EQ(s.messages_stored(), static_cast<std::size_t>(count));
  }
  EXPECT_EQ(completed, count);
  EXPECT_EQ(stored_count, count);
  spool_reader reader(dir_);
  EXPECT_EQ(reader.messages().value().size(), static_cast<std::size_t>(count));
}

TEST_F(spool_test, a_growing_log_is_checkpointed_on_the_blocking_pool) {
  spool s(dir_, io_.get_executor(), blocking_);
  // Only a checkpoint copies pages from the log into queue.db while the
  // spool is open: SQLite's own checkpoint is replaced.
  const auto before = std::filesystem::file_size(dir_ / "queue.db");
  for (int i = 0; i < 200; ++i) {
    auto draft = s.store().begin();
    draft->append(std::string(200 * 1024, static_cast<char>('a' + i % 26)));
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  // The first checkpoint starts once the log holds 8,000 frames (32,768,000
  // bytes, some of them versions of the same page) and copies what the log
  // held then; commits landing meanwhile may or may not be in it, and the
  // log starts over afterwards, below the next threshold. So at least about
  // 7,000 pages reach queue.db, and none without the checkpointer.
  constexpr std::uintmax_t copied_at_least = 24 * 1024 * 1024;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::filesystem::file_size(dir_ / "queue.db") < before + copied_at_least &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(std::filesystem::file_size(dir_ / "queue.db"), before + copied_at_least);
  EXPECT_EQ(run_op(io_, s.admin().summary()).value().depth, 200u);
}

TEST_F(spool_test, due_messages_then_records_move_and_finish_them) {
  spool s(dir_, io_.get_executor(), blocking_);
  auto& queue = s.queue();
  auto draft = s.store().begin();
  const std::string id = draft->id();
  draft->append("Subject: x\r\n\r\nbody\r\n");
  ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();

  auto due = run_op(io_, queue.due(oldest_due(now + 1000, 10, {}))).value().oldest;
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, id);
  EXPECT_EQ(due[0].recipients.size(), 2u);
  EXPECT_TRUE(run_op(io_, queue.due(oldest_due(now + 1000, 10, {id}))).value().oldest.empty());
  EXPECT_EQ(text_of(run_op(io_, queue.content(id))).value(), "Subject: x\r\n\r\nbody\r\n");

  // First attempt: bob delivered, carol deferred.
  delivery_record first;
  first.id = id;
  first.recipients = {{0, recipient_status::delivered, "250 2.0.0 OK"},
                      {1, recipient_status::pending, "451 4.3.0 try later"}};
  first.next_attempt_ms = now + 60000;
  first.last_error = "451 4.3.0 try later";
  EXPECT_TRUE(stored(run_op(io_, queue.record(first, std::nullopt))));
  EXPECT_TRUE(run_op(io_, queue.due(oldest_due(now + 1000, 10, {}))).value().oldest.empty());
  EXPECT_EQ(run_op(io_, queue.next_due()).value(), now + 60000);
  {
    spool_reader reader(dir_);
    auto m = reader.messages().value().at(0);
    EXPECT_EQ(m.attempts, 1);
    EXPECT_EQ(m.last_error, "451 4.3.0 try later");
    EXPECT_EQ(m.recipients[0].status, recipient_status::delivered);
    EXPECT_EQ(m.recipients[1].status, recipient_status::pending);
  }

  // Retry now; carol fails for good and the message leaves with a bounce.
  EXPECT_EQ(run_op(io_, queue.reschedule("alice@example.com", now)).value(), 1u);
  EXPECT_EQ(run_op(io_, queue.due(oldest_due(now + 1000, 10, {}))).value().oldest.size(), 1u);
  delivery_record last;
  last.id = id;
  last.finished = true;
  last.recipients = {{1, recipient_status::failed, "550 5.1.1 no such user"}};
  generated_message bounce;
  bounce.env.account = "alice@example.com";
  bounce.env.recipients = {recipient{"alice@example.com", {}}};
  bounce.content = "bounce body\r\n";
  EXPECT_TRUE(stored(run_op(io_, queue.record(last, bounce))));
  spool_reader reader(dir_);
  auto left = reader.messages().value();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_NE(left[0].id, id);
  EXPECT_EQ(left[0].env.sender, "");
  EXPECT_EQ(reader.content(left[0].id).value(), "bounce body\r\n");
}

TEST_F(spool_test, due_takes_the_oldest_up_to_the_limit_and_skips_claimed_ones) {
  spool s(dir_, io_.get_executor(), blocking_);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    auto draft = s.store().begin();
    ids.push_back(draft->id());
    draft->append("Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // distinct arrival times
  }
  const auto later = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() +
                     1000;
  auto ids_of = [](const std::vector<queued_message>& ms) {
    std::vector<std::string> out;
    for (const auto& m : ms) out.push_back(m.id);
    return out;
  };
  auto two = run_op(io_, s.queue().due(oldest_due(later, 2, {}))).value().oldest;
  EXPECT_EQ(ids_of(two), (std::vector<std::string>{ids[0], ids[1]}));
  EXPECT_EQ(two.at(0).recipients.size(), 2u);
  auto skipping = run_op(io_, s.queue().due(oldest_due(later, 2, {ids[0], ids[2]}))).value().oldest;
  EXPECT_EQ(ids_of(skipping), (std::vector<std::string>{ids[1], ids[3]}));
}

// A backlog made due at one instant (an account authorized again) is taken
// in arrival order, and the mail that came in after the last look has its
// share apart from it however long the backlog.

TEST_F(spool_test, due_takes_a_fresh_share_of_arrivals_beside_the_oldest) {
  spool s(dir_, io_.get_executor(), blocking_);
  std::vector<std::string> ids;
  auto store_one = [&] {
    auto draft = s.store().begin();
    ids.push_back(draft->id());
    draft->append("Subject: " + std::to_string(ids.size()) + "\r\n\r\nbody\r\n");
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  };
  for (int i = 0; i < 6; ++i) store_one();
  const auto now = oauth_relay::now_ms();
  // The backlog waits for the account, then is due at one instant.
  ASSERT_EQ(park_alice(s, now), 6u);
  auto first = oldest_due(now + 1000, 2, {});
  first.fresh = 2;  // no position yet: only where arrival order ends
  auto start = run_op(io_, s.queue().due(first)).value();
  EXPECT_TRUE(start.fresh.empty());
  ASSERT_EQ(start.oldest.size(), 0u);  // all parked
  const auto position = start.arrived_through;
  EXPECT_GT(position, 0);
  ASSERT_EQ(run_op(io_, s.queue().reschedule("alice@example.com", now)).value(), 6u);
  for (int i = 0; i < 3; ++i) store_one();  // fresh: ids[6], ids[7], ids[8]

  auto ids_of = [](const std::vector<queued_message>& ms) {
    std::vector<std::string> out;
    for (const auto& m : ms) out.push_back(m.id);
    return out;
  };
  auto request = oldest_due(now + 1000, 2, {ids[6]});  // ids[6] is being delivered
  request.fresh = 1;
  request.arrived_after = position;
  auto look = run_op(io_, s.queue().due(request)).value();
  EXPECT_EQ(ids_of(look.fresh), (std::vector<std::string>{ids[7]}));
  EXPECT_EQ(ids_of(look.oldest), (std::vector<std::string>{ids[0], ids[1]}));
  EXPECT_EQ(look.fresh.at(0).recipients.size(), 2u);

  // From where that look ended: the last fresh one, and the oldest again
  // (the caller claims what it was given; here nothing is busy).
  request.arrived_after = look.arrived_through;
  request.busy = {};
  request.fresh = 5;
  auto next = run_op(io_, s.queue().due(request)).value();
  EXPECT_EQ(ids_of(next.fresh), (std::vector<std::string>{ids[8]}));
  EXPECT_EQ(ids_of(next.oldest), (std::vector<std::string>{ids[0], ids[1]}));
  request.arrived_after = next.arrived_through;
  EXPECT_TRUE(run_op(io_, s.queue().due(request)).value().fresh.empty());
}

// SQLite gives a deleted newest row's rowid to the next row: the spool does
// not, or mail arriving just after the newest left would be behind the place
// the scheduler looks for fresh mail from.
TEST_F(spool_test, a_new_message_goes_past_the_position_of_one_that_left) {
  spool s(dir_, io_.get_executor(), blocking_);
  auto store_one = [&] {
    auto draft = s.store().begin();
    std::string id = draft->id();
    draft->append("Subject: x\r\n\r\nbody\r\n");
    EXPECT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
    return id;
  };
  store_one();
  const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto where = oldest_due(now + 1000, 0, {});
  const auto before = run_op(io_, s.queue().due(where)).value().arrived_through;
  const auto newest = store_one();
  delivery_record done;
  done.id = newest;
  done.finished = true;
  ASSERT_TRUE(stored(run_op(io_, s.queue().record(done, std::nullopt))));
  const auto next = store_one();
  where.arrived_after = before;
  where.fresh = 10;
  auto look = run_op(io_, s.queue().due(where)).value();
  ASSERT_EQ(look.fresh.size(), 1u);
  EXPECT_EQ(look.fresh[0].id, next);
  EXPECT_EQ(look.arrived_through, before + 2);
}

// Rescheduling a long queue goes in slices; every message is changed once.
TEST_F(spool_test, reschedule_changes_every_message_of_a_long_queue) {
  spool s(dir_, io_.get_executor(), blocking_);
  for (int i = 0; i < 2500; ++i) {
    auto draft = s.store().begin();
    draft->append("Subject: x\r\n\r\nbody\r\n");
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  const auto now = oauth_relay::now_ms();
  ASSERT_EQ(park_alice(s, now), 2500u);
  EXPECT_EQ(run_op(io_, s.queue().reschedule("alice@example.com", now)).value(), 2500u);
  EXPECT_EQ(run_op(io_, s.queue().due(oldest_due(now, 3000, {}))).value().oldest.size(), 2500u);
  EXPECT_EQ(park_alice(s, now, "ALICE@example.com"), 2500u);
  EXPECT_EQ(run_op(io_, s.queue().reschedule("", now)).value(), 2500u);
  EXPECT_EQ(run_op(io_, s.queue().reschedule("", now)).value(), 0u);
}

TEST_F(spool_test, finishing_a_large_message_removes_its_file) {
  spool s(dir_, io_.get_executor(), blocking_);
  auto draft = s.store().begin();
  const std::string id = draft->id();
  draft->append(std::string(2 * spool_memory_limit, 'L'));
  ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  ASSERT_TRUE(std::filesystem::exists(dir_ / "spool" / id));
  EXPECT_EQ(text_of(run_op(io_, s.queue().content(id))).value().size(), 2 * spool_memory_limit);
  delivery_record done;
  done.id = id;
  done.finished = true;
  done.recipients = {{0, recipient_status::delivered, "250 ok"},
                     {1, recipient_status::delivered, "250 ok"}};
  ASSERT_TRUE(stored(run_op(io_, s.queue().record(done, std::nullopt))));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "spool" / id));
  spool_reader reader(dir_);
  EXPECT_TRUE(reader.messages().value().empty());
}

// Stores one message (content `body`, padded past the memory limit when
// `spilled`) and returns its id.
std::string store_one(spool& s, boost::asio::io_context& io, const envelope& env,
                      bool spilled = false) {
  auto draft = s.store().begin();
  const std::string id = draft->id();
  draft->append(spilled ? std::string(2 * spool_memory_limit, 'S') : std::string("x\r\n"));
  EXPECT_TRUE(stored(run_op(io, s.store().commit(std::move(draft), env))));
  return id;
}

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

TEST_F(spool_test, summary_counts_depth_deferred_and_oldest_arrival) {
  spool s(dir_, io_.get_executor(), blocking_);
  auto empty = run_op(io_, s.admin().summary()).value();
  EXPECT_EQ(empty.depth, 0u);
  EXPECT_EQ(empty.deferred, 0u);
  EXPECT_FALSE(empty.oldest_received_at.has_value());

  const auto before = unix_ms_now() / 1000;
  const auto first = store_one(s, io_, sample_envelope());
  store_one(s, io_, sample_envelope());
  store_one(s, io_, sample_envelope());
  const auto after = unix_ms_now() / 1000;
  delivery_record deferred;
  deferred.id = first;
  deferred.next_attempt_ms = unix_ms_now() + 60000;
  deferred.last_error = "451 4.3.0 later";
  ASSERT_TRUE(stored(run_op(io_, s.queue().record(deferred, std::nullopt))));

  auto summary = run_op(io_, s.admin().summary()).value();
  EXPECT_EQ(summary.depth, 3u);
  EXPECT_EQ(summary.deferred, 1u);
  ASSERT_TRUE(summary.oldest_received_at.has_value());
  EXPECT_GE(*summary.oldest_received_at, before);
  EXPECT_LE(*summary.oldest_received_at, after);
  EXPECT_EQ(s.messages_received(), 3u);
}

TEST_F(spool_test, list_returns_every_message_oldest_first_with_recipients) {
  spool s(dir_, io_.get_executor(), blocking_);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(store_one(s, io_, sample_envelope()));
  auto listed = run_op(io_, s.admin().list(0, 100)).value().messages;
  ASSERT_EQ(listed.size(), 4u);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(listed[i].id, ids[i]);  // same second: arrival order decides
    ASSERT_EQ(listed[i].recipients.size(), 2u);
    EXPECT_EQ(listed[i].recipients[1].rcpt.address, "carol@example.org");
    EXPECT_EQ(listed[i].env.sender, "alice@example.com");
  }
}

TEST_F(spool_test, retry_makes_named_or_all_messages_due_and_names_unknown_ids) {
  spool s(dir_, io_.get_executor(), blocking_);
  const auto a = store_one(s, io_, sample_envelope());
  const auto b = store_one(s, io_, sample_envelope());
  const auto now = unix_ms_now();
  for (const auto& id : {a, b}) {
    delivery_record later;
    later.id = id;
    later.next_attempt_ms = now + 3600000;
    ASSERT_TRUE(stored(run_op(io_, s.queue().record(later, std::nullopt))));
  }
  auto due_now = [&] {
    return run_op(io_, s.queue().due(oldest_due(now + 10, 10, {}))).value().oldest;
  };
  EXPECT_TRUE(due_now().empty());

  auto one = run_op(io_, s.admin().retry({a, "ffffffffffffffff"}, false, now));
  ASSERT_TRUE(stored(one));
  EXPECT_EQ(one->changed, 1u);
  EXPECT_EQ(one->unknown, std::vector<std::string>{"ffffffffffffffff"});
  auto due = due_now();
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, a);
  EXPECT_EQ(due[0].next_attempt_ms, now);

  // A message already due earlier keeps its time; "all" counts every message.
  auto all = run_op(io_, s.admin().retry({}, true, now + 5)).value();
  EXPECT_EQ(all.changed, 2u);
  EXPECT_TRUE(all.unknown.empty());
  due = due_now();
  ASSERT_EQ(due.size(), 2u);
  EXPECT_EQ(due[0].next_attempt_ms, now);
  EXPECT_EQ(due[1].next_attempt_ms, now + 5);
}

TEST_F(spool_test, delete_removes_rows_recipients_and_content_files) {
  spool s(dir_, io_.get_executor(), blocking_);
  const auto small = store_one(s, io_, sample_envelope());
  const auto big = store_one(s, io_, sample_envelope(), /*spilled=*/true);
  const auto kept = store_one(s, io_, sample_envelope());
  ASSERT_TRUE(std::filesystem::exists(dir_ / "spool" / big));

  auto result = run_op(io_, s.queue().remove({small, big, "0123456789abcdef"}));
  ASSERT_TRUE(stored(result));
  EXPECT_EQ(result->changed, 2u);
  EXPECT_EQ(result->unknown, std::vector<std::string>{"0123456789abcdef"});
  EXPECT_FALSE(std::filesystem::exists(dir_ / "spool" / big));
  EXPECT_EQ(failure_code(run_op(io_, s.queue().content(big))), spool_errc::not_found);

  spool_reader reader(dir_);
  auto left = reader.messages().value();
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].id, kept);
  // No recipient rows are left behind for the deleted ones.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2((dir_ / "queue.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* count = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM recipients WHERE message_id IN (?1, ?2)",
                               -1, &count, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(count, 1, small.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(count, 2, big.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(count), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(count, 0), 0);
  sqlite3_finalize(count);
  // Only the kept message's content row is left.
  sqlite3_stmt* contents = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*) FROM contents", -1, &contents, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(contents), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(contents, 0), 1);
  sqlite3_finalize(contents);
  sqlite3_close(db);
  // Deleting again: nothing is queued under that id any more.
  auto again = run_op(io_, s.queue().remove({small})).value();
  EXPECT_EQ(again.changed, 0u);
  EXPECT_EQ(again.unknown, std::vector<std::string>{small});
}

TEST_F(spool_test, damaged_database_is_refused_with_its_path) {
  std::filesystem::create_directories(dir_);
  std::ofstream(dir_ / "queue.db") << std::string(8192, 'Z');
  try {
    spool s(dir_, io_.get_executor(), blocking_);
    FAIL() << "a damaged database was opened";
  } catch (const spool_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir_ / "queue.db").string()), std::string::npos)
        << e.what();
  }
}

// One value from the spool's database, read with a connection of the test's own.
std::int64_t query_int(const std::filesystem::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
  std::int64_t value = -1;
  if (sqlite3_step(stmt) == SQLITE_ROW) value = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return value;
}

void exec_sql(const std::filesystem::path& db_path, const char* sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_close(db);
}

TEST_F(spool_test, finished_messages_leave_no_content_behind) {
  spool s(dir_, io_.get_executor(), blocking_);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto draft = s.store().begin();
    ids.push_back(draft->id());
    draft->append("Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n");
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  EXPECT_EQ(query_int(dir_ / "queue.db", "SELECT count(*) FROM contents"), 3);
  for (const auto& id : {ids[0], ids[2]}) {
    delivery_record done;
    done.id = id;
    done.finished = true;
    done.recipients = {{0, recipient_status::delivered, "250 ok"},
                       {1, recipient_status::delivered, "250 ok"}};
    ASSERT_TRUE(stored(run_op(io_, s.queue().record(done, std::nullopt))));
  }
  EXPECT_EQ(query_int(dir_ / "queue.db", "SELECT count(*) FROM contents"), 1);
  EXPECT_EQ(text_of(run_op(io_, s.queue().content(ids[1]))).value(), "Subject: 1\r\n\r\nbody\r\n");
}

TEST_F(spool_test, postpone_moves_only_the_mail_that_is_due) {
  spool s(dir_, io_.get_executor(), blocking_);
  auto store_one = [&] {
    auto draft = s.store().begin();
    draft->append("Subject: x\r\n\r\nbody\r\n");
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  };
  store_one();
  store_one();
  const auto hour_later = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count() +
                          3600 * 1000;
  constexpr std::int64_t day = 24 * 3600 * 1000;
  EXPECT_EQ(run_op(io_, s.queue().postpone("alice@example.com", hour_later, {day, 0}, "no token"))
                .value(),
            2u);
  store_one();
  // The two parked an hour ago are not rewritten; only the new one is due.
  EXPECT_EQ(
      run_op(io_, s.queue().postpone("ALICE@example.com", hour_later + 1, {day, 0}, "no token"))
          .value(),
      1u);
  spool_reader reader(dir_);
  const auto parked = reader.messages().value();
  ASSERT_EQ(parked.size(), 3u);
  for (const auto& m : parked) EXPECT_EQ(m.last_error, "no token");
  EXPECT_EQ(parked[0].next_attempt_ms, hour_later);
  EXPECT_EQ(parked[2].next_attempt_ms, hour_later + 1);
}

TEST_F(spool_test, postpone_parks_no_message_past_its_lifetime) {
  spool s(dir_, io_.get_executor(), blocking_);
  auto draft = s.store().begin();
  draft->append("Subject: x\r\n\r\nbody\r\n");
  ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  spool_reader before(dir_);
  const auto received_ms = before.messages().value().at(0).received_at * 1000;
  const auto hour_later = received_ms + 3600 * 1000;
  // With a lifetime of 5 s it is due again 5 s after its arrival, not in an hour.
  EXPECT_EQ(run_op(io_, s.queue().postpone("alice@example.com", hour_later, {5000, 0}, "no token"))
                .value(),
            1u);
  spool_reader reader(dir_);
  EXPECT_EQ(reader.messages().value().at(0).next_attempt_ms, received_ms + 5000);
}

// The sending record: a row per attempt that delivered something, stored
// with the attempt and pruned after 24 hours; holds stored and removed.
TEST_F(spool_test, the_sending_record_and_holds_are_kept_and_read_back) {
  spool s(dir_, io_.get_executor(), blocking_);
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    auto draft = s.store().begin();
    ids.push_back(draft->id());
    draft->append("Subject: x\r\n\r\nbody\r\n");
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  constexpr std::int64_t day = 24 * 3600 * 1000;
  constexpr std::int64_t t = 1'800'000'000'000;
  const std::int64_t times[] = {t - day - 1, t - 10, t};  // the first is out of the window by t
  for (int i = 0; i < 3; ++i) {
    delivery_record done;
    done.id = ids[i];
    done.finished = true;
    done.recipients = {{0, recipient_status::delivered, "250 ok"},
                       {1, recipient_status::delivered, "250 ok"}};
    done.account = "alice@example.com";
    done.sent_recipients = 2;
    done.sent_at_ms = times[i];
    ASSERT_TRUE(stored(run_op(io_, s.queue().record(done, std::nullopt))));
  }
  // The last record pruned what had left the window by its time.
  EXPECT_EQ(query_int(dir_ / "queue.db", "SELECT count(*) FROM sent_log"), 2);
  ASSERT_TRUE(stored(run_op(
      io_, s.queue().save_hold("alice@example.com", hold_row{"alice@example.com", "over_quota",
                                                             t - 5, t + 3600, 0, "quota"}))));
  auto history = run_op(io_, s.queue().sending_history(t - day));
  ASSERT_TRUE(stored(history));
  ASSERT_EQ(history->sent.size(), 2u);
  EXPECT_EQ(history->sent[0].account, "alice@example.com");
  EXPECT_EQ(history->sent[0].sent_at_ms, t - 10);
  EXPECT_EQ(history->sent[0].recipients, 2u);
  EXPECT_EQ(history->sent[1].sent_at_ms, t);
  ASSERT_EQ(history->holds.size(), 1u);
  EXPECT_EQ(history->holds[0].state, "over_quota");
  EXPECT_EQ(history->holds[0].resumes_at_ms, t + 3600);
  EXPECT_EQ(history->holds[0].reason, "quota");
  // A hold over by then is not read back; a removed one is gone.
  EXPECT_TRUE(run_op(io_, s.queue().sending_history(t + 3600))->holds.empty());
  ASSERT_TRUE(stored(run_op(io_, s.queue().save_hold("ALICE@example.com", std::nullopt))));
  EXPECT_EQ(query_int(dir_ / "queue.db", "SELECT count(*) FROM account_holds"), 0);
}

// The 8-bit flag is noted as the content arrives (in memory or in a file,
// the Received: header included) and stored with the row, so delivery can
// declare BODY=8BITMIME without reading the content first.
TEST_F(spool_test, the_8bit_flag_is_stored_with_each_message) {
  spool s(dir_, io_.get_executor(), blocking_);
  struct sample {
    std::string content;
    bool eight_bit;
  };
  std::string large_8bit(2 * spool_memory_limit, 'a');
  large_8bit[spool_memory_limit + 7] = '\xe9';
  const std::vector<sample> samples = {
      {"Subject: plain\r\n\r\nbody\r\n", false},
      {"Subject: caf\xc3\xa9\r\n\r\nbody\r\n", true},
      {std::string(2 * spool_memory_limit, 'a'), false},
      {large_8bit, true},
  };
  std::vector<std::string> ids;
  for (const auto& sample : samples) {
    auto draft = s.store().begin();
    ids.push_back(draft->id());
    // In two appends: a flag seen in the first must survive the second.
    draft->append(sample.content.substr(0, sample.content.size() / 2 + 10));
    draft->append(sample.content.substr(sample.content.size() / 2 + 10));
    ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
  }
  for (std::size_t i = 0; i < samples.size(); ++i) {
    auto content = run_op(io_, s.queue().content(ids[i]));
    ASSERT_TRUE(stored(content));
    EXPECT_EQ(content->eight_bit(), samples[i].eight_bit) << i;
    EXPECT_EQ(query_int(dir_ / "queue.db",
                        ("SELECT eight_bit FROM messages WHERE id = '" + ids[i] + "'").c_str()),
              samples[i].eight_bit ? 1 : 0);
  }
  // A bounce is stored with its own.
  delivery_record done;
  done.id = ids[0];
  done.finished = true;
  generated_message bounce;
  bounce.env.account = "alice@example.com";
  bounce.env.recipients = {recipient{"alice@example.com", {}}};
  bounce.content = "Subject: \xe9\r\n\r\n";
  ASSERT_TRUE(stored(run_op(io_, s.queue().record(done, bounce))));
  EXPECT_EQ(query_int(dir_ / "queue.db", "SELECT count(*) FROM messages WHERE eight_bit = 1"), 3);
}

// Rows stored before the flag existed (NULL) are read once to find out.
TEST_F(spool_test, a_row_without_the_8bit_flag_is_read_for_it) {
  std::vector<std::string> ids;
  {
    spool s(dir_, io_.get_executor(), blocking_);
    for (const std::string& content :
         {std::string("Subject: caf\xc3\xa9\r\n\r\n"), std::string("Subject: plain\r\n\r\n"),
          std::string(2 * spool_memory_limit, 'a') + "\xe9"}) {
      auto draft = s.store().begin();
      ids.push_back(draft->id());
      draft->append(content);
      ASSERT_TRUE(stored(commit(s, std::move(draft), sample_envelope())));
    }
  }
  exec_sql(dir_ / "queue.db", "UPDATE messages SET eight_bit = NULL");
  spool s(dir_, io_.get_executor(), blocking_);
  const std::vector<bool> expected = {true, false, true};
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto content = run_op(io_, s.queue().content(ids[i]));
    ASSERT_TRUE(stored(content));
    EXPECT_EQ(content->eight_bit(), expected[i]) << i;
    auto next = content->next();  // and it reads from the first octet
    ASSERT_TRUE(next);
    EXPECT_EQ(next->substr(0, 8), i == 2 ? "aaaaaaaa" : "Subject:");
  }
}

TEST_F(spool_test, version_1_database_is_migrated_with_its_mail) {
  std::filesystem::create_directories(dir_);
  exec_sql(dir_ / "queue.db", R"sql(
    CREATE TABLE messages(id TEXT PRIMARY KEY, received_at INTEGER NOT NULL, sender TEXT NOT NULL,
      account TEXT NOT NULL, body_type INTEGER NOT NULL, smtputf8 INTEGER NOT NULL,
      dsn_ret INTEGER NOT NULL, envid TEXT NOT NULL, size INTEGER NOT NULL, content BLOB,
      content_file TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
      last_error TEXT NOT NULL DEFAULT '');
    CREATE TABLE recipients(message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
      position INTEGER NOT NULL, address TEXT NOT NULL, notify INTEGER NOT NULL,
      orcpt TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
      last_reply TEXT NOT NULL DEFAULT '', PRIMARY KEY(message_id, position)) WITHOUT ROWID;
    INSERT INTO messages VALUES('m1', 1, 'a@example.com', 'a@example.com', 0, 0, 0, '', 8,
      CAST('old mail' AS BLOB), NULL, 2, 5, 'x');
    INSERT INTO recipients VALUES('m1', 0, 'b@example.org', 0, '', 0, '');
    PRAGMA user_version = 1;
  )sql");
  {
    spool s(dir_, io_.get_executor(), blocking_);
    EXPECT_EQ(text_of(run_op(io_, s.queue().content("m1"))).value(), "old mail");
  }
  // Versions 3 to 6 came after: the accounts table, its tokens sealed,
  // messages.delay_warned and messages.eight_bit.
  EXPECT_EQ(query_int(dir_ / "queue.db", "PRAGMA user_version"), db::queue_schema_version);
  spool_reader reader(dir_);
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].attempts, 2);
  EXPECT_EQ(messages[0].recipients.at(0).rcpt.address, "b@example.org");
  EXPECT_EQ(reader.content("m1").value(), "old mail");
}

TEST_F(spool_test, database_of_a_newer_version_is_refused) {
  std::filesystem::create_directories(dir_);
  exec_sql(dir_ / "queue.db", "CREATE TABLE t(x); PRAGMA user_version = 99;");
  try {
    spool s(dir_, io_.get_executor(), blocking_);
    FAIL() << "a database of a newer version was opened";
  } catch (const spool_error& e) {
    EXPECT_NE(std::string(e.what()).find("newer oauth-relay"), std::string::npos) << e.what();
  }
  EXPECT_EQ(query_int(dir_ / "queue.db", "PRAGMA user_version"), 99);
}

}  // namespace
}  // namespace oauth_relay::relay
