// The queue's figures are kept, not recounted: after every kind of change
// (accepts, deliveries, deferrals, bounces, deletes, retries) they equal a
// count of the rows; and the listing comes a page at a time in arrival order.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "relay/spool/spool.hpp"
#include "tests/relay/spool/spool_test_support.hpp"

namespace oauth_relay::relay {
namespace {

using spool_test_support::run_op;
using spool_test_support::stored;

// A real count of the rows, the way the figures were computed before they
// were kept: depth, deferred, oldest arrival.
struct recount {
  std::int64_t depth = -1;
  std::int64_t deferred = -1;
  std::int64_t oldest = -1;  // -1: none
};

recount count_rows(const std::filesystem::path& dir) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2((dir / "queue.db").c_str(), &db, SQLITE_OPEN_READONLY, nullptr),
            SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db,
                               "SELECT count(*), count(CASE WHEN attempts > 0 THEN 1 END), "
                               "coalesce(min(received_at), -1) FROM messages",
                               -1, &st, nullptr),
            SQLITE_OK);
  recount out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    out.depth = sqlite3_column_int64(st, 0);
    out.deferred = sqlite3_column_int64(st, 1);
    out.oldest = sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

class queue_counts_test : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("queue-counts-test-" + std::to_string(std::random_device{}()));
  }
  void TearDown() override {
    blocking_.join();
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<spool> open() {
    return std::make_unique<spool>(dir_, io_.get_executor(), blocking_.get_executor());
  }

  std::string store(spool& s, bool spilled = false) {
    envelope env;
    env.sender = "alice@example.com";
    env.account = "alice@example.com";
    env.recipients = {recipient{"bob@example.org", {}}, recipient{"carol@example.org", {}}};
    auto draft = s.store().begin();
    const std::string id = draft->id();
    draft->append(spilled ? std::string(2 * spool_memory_limit, 'S') : std::string("x\r\n"));
    EXPECT_TRUE(stored(run_op(io_, s.store().commit(std::move(draft), env))));
    return id;
  }

  void record(spool& s, delivery_record r, std::optional<generated_message> bounce = {}) {
    ASSERT_TRUE(stored(run_op(io_, s.queue().record(std::move(r), std::move(bounce)))));
  }

  // The kept figures and a recount agree, and are `depth` and `deferred`.
  void expect_counts(spool& s, std::size_t depth, std::size_t deferred) {
    const auto kept = run_op(io_, s.admin().summary()).value();
    const auto real = count_rows(dir_);
    EXPECT_EQ(kept.depth, depth);
    EXPECT_EQ(kept.deferred, deferred);
    EXPECT_EQ(static_cast<std::int64_t>(kept.depth), real.depth);
    EXPECT_EQ(static_cast<std::int64_t>(kept.deferred), real.deferred);
    EXPECT_EQ(kept.oldest_received_at.value_or(-1), real.oldest);
  }

  std::filesystem::path dir_;
  boost::asio::io_context io_;
  boost::asio::thread_pool blocking_{1};
};

delivery_record deferral(const std::string& id, bool count_attempt = true) {
  delivery_record r;
  r.id = id;
  r.next_attempt_ms = 4102444800000;  // 2100: not due during the test
  r.last_error = "451 4.3.0 later";
  r.count_attempt = count_attempt;
  r.recipients = {{0, recipient_status::pending, "451 4.3.0 later"}};
  return r;
}

delivery_record finished(const std::string& id, recipient_status status) {
  delivery_record r;
  r.id = id;
  r.finished = true;
  r.recipients = {{0, status, "x"}, {1, status, "x"}};
  return r;
}

TEST_F(queue_counts_test, kept_counts_equal_a_recount_after_every_kind_of_change) {
  auto s = open();
  expect_counts(*s, 0, 0);
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(store(*s, /*spilled=*/i % 3 == 0));
  expect_counts(*s, 8, 0);

  record(*s, deferral(ids[0]));  // first failure: deferred
  record(*s, deferral(ids[0]));  // second: still one deferred message
  record(*s, deferral(ids[1]));
  record(*s, deferral(ids[2], /*count_attempt=*/false));  // parked, no attempt: not deferred
  expect_counts(*s, 8, 2);

  record(*s, finished(ids[3], recipient_status::delivered));  // delivered
  record(*s, finished(ids[0], recipient_status::delivered));  // a deferred one delivered
  expect_counts(*s, 6, 1);

  // A permanent failure leaves the queue and stores its bounce in the same
  // transaction: one out, one in.
  generated_message bounce;
  bounce.env.sender = "";
  bounce.env.account = "alice@example.com";
  bounce.env.recipients = {recipient{"alice@example.com", {}}};
  bounce.content = "Subject: failed\r\n\r\nsorry\r\n";
  record(*s, finished(ids[1], recipient_status::failed), bounce);
  expect_counts(*s, 6, 0);

  auto removed = run_op(io_, s->queue().remove({ids[4], ids[5], "0000000000000000"}));
  ASSERT_TRUE(stored(removed));
  EXPECT_EQ(removed->changed, 2u);
  record(*s, deferral(ids[6]));
  ASSERT_TRUE(stored(run_op(io_, s->admin().retry({}, true, 0))));  // schedule only
  expect_counts(*s, 4, 1);

  // Reopened (as after a kill: the figures live in queue.db's transactions,
  // not in memory), they still agree without a recount at start.
  s.reset();
  s = open();
  expect_counts(*s, 4, 1);
  store(*s);
  expect_counts(*s, 5, 1);
}

TEST_F(queue_counts_test, the_listing_comes_in_pages_in_arrival_order) {
  auto s = open();
  std::vector<std::string> ids;
  for (int i = 0; i < 7; ++i) ids.push_back(store(*s));

  std::vector<std::string> seen;
  std::int64_t after = 0;
  int pages = 0;
  for (;;) {
    auto page = run_op(io_, s->admin().list(after, 3)).value();
    ++pages;
    for (const auto& m : page.messages) {
      seen.push_back(m.id);
      EXPECT_EQ(m.recipients.size(), 2u);
    }
    if (!page.next_after) break;
    EXPECT_EQ(page.messages.size(), 3u);
    after = *page.next_after;
    if (pages == 1) {
      // Messages leaving before the next page do not shift it: the third
      // message is the page's end, and the next page starts after it.
      ASSERT_TRUE(stored(run_op(io_, s->queue().remove({ids[2], ids[3]}))));
    }
  }
  EXPECT_EQ(pages, 2);
  EXPECT_EQ(seen, (std::vector<std::string>{ids[0], ids[1], ids[2], ids[4], ids[5], ids[6]}));

  // An exact page is the last one: nothing said to follow.
  auto whole = run_op(io_, s->admin().list(0, 5)).value();
  EXPECT_EQ(whole.messages.size(), 5u);
  EXPECT_FALSE(whole.next_after.has_value());
  EXPECT_TRUE(run_op(io_, s->admin().list(0, 0)).value().messages.empty());
}

}  // namespace
}  // namespace oauth_relay::relay
