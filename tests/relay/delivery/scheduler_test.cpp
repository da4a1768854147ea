// The delivery scheduler on an io_context with in-memory stand-ins for the
// spool, the tokens and the upstream (no network, no threads): which
// connections carry which messages, and exactly what is recorded.
#include "relay/delivery/scheduler.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <map>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "auth/token_manager.hpp"  // needs_reauth_message
#include "relay/delivery/bounce.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

constexpr std::int64_t now = 1'800'000'000'000;  // the scheduler's clock, pinned (unix ms)
const std::string alice = "alice@example.com";
const std::string bob = "bob@example.com";

// Completes later, as the real spool, token manager and sockets do.
asio::awaitable<void> yield() {
  auto executor = co_await asio::this_coro::executor;
  co_await asio::post(executor, asio::use_awaitable);
}

std::string content_of(const std::string& id) {
  return "Subject: " + id + "\r\n\r\nbody\r\n";
}

// Every piece of `content` from its first octet, joined.
std::string read_all(message_content& content) {
  std::string out;
  content.rewind();
  for (auto piece = content.next(); piece && !piece->empty(); piece = content.next()) {
    out.append(*piece);
  }
  return out;
}

// --- the spool ----------------------------------------------------------------

class fake_queue final : public delivery_queue {
 public:
  void add(std::string id, std::string account,
           std::vector<std::string> recipients = {"rcpt@example.org"}) {
    queued_message m;
    m.id = std::move(id);
    m.received_at = now / 1000 - 60;
    m.env.sender = "app@example.com";
    m.env.account = std::move(account);
    for (auto& address : recipients) {
      queued_recipient r;
      r.rcpt.address = std::move(address);
      m.env.recipients.push_back(r.rcpt);
      m.recipients.push_back(std::move(r));
    }
    m.next_attempt_ms = now;
    m.size = content_of(m.id).size();
    order_.push_back(m.id);
    messages_[m.id] = std::move(m);
  }

  // Positions in arrival order are places in order_ counted from 1.
  asio::awaitable<spool_result<due_mail>> due(due_request request) override {
    co_await yield();
    due_mail out;
    message_id_set taken(request.busy);
    auto take = [&](const std::string& id, std::vector<queued_message>& into) {
      auto it = messages_.find(id);
      if (it == messages_.end() || it->second.next_attempt_ms > request.now_ms ||
          !taken.insert(id).second) {
        return;
      }
      into.push_back(it->second);
    };
    out.arrived_through = static_cast<std::int64_t>(order_.size());
    if (request.arrived_after) {
      out.arrived_through = *request.arrived_after;
      for (auto i = static_cast<std::size_t>(*request.arrived_after);
           i < order_.size() && out.fresh.size() < request.fresh; ++i) {
        out.arrived_through = static_cast<std::int64_t>(i + 1);
        take(order_[i], out.fresh);
      }
    }
    for (const auto& id : order_) {
      if (out.oldest.size() == request.oldest) break;
      take(id, out.oldest);
    }
    fresh_handed_out += out.fresh.size();
    co_return out;
  }

  asio::awaitable<spool_result<std::optional<std::int64_t>>> next_due() override {
    co_await yield();
    std::optional<std::int64_t> next;
    for (const auto& [id, m] : messages_) {
      if (!next || m.next_attempt_ms < *next) next = m.next_attempt_ms;
    }
    co_return next;
  }

  asio::awaitable<spool_result<message_content>> content(std::string id) override {
    co_await yield();
    ++content_reads[id];
    if (auto it = unreadable.find(id); it != unreadable.end()) co_return it->second;
    if (messages_.count(id) == 0) co_return spool_failure(spool_errc::not_found, id);
    if (auto it = contents.find(id); it != contents.end()) {
      co_return message_content(it->second, false);
    }
    co_return message_content(content_of(id), false);
  }

  asio::awaitable<spool_result<void>> record(delivery_record r,
                                             std::optional<generated_message> bounce) override {
    co_await yield();
    log.push_back("record " + r.id);
    auto it = messages_.find(r.id);
    if (it != messages_.end()) {
      auto& m = it->second;
      for (const auto& u : r.recipients) {
        m.recipients[u.position].status = u.status;
        m.recipients[u.position].last_reply = u.reply;
      }
      ++m.attempts;
      m.next_attempt_ms = r.next_attempt_ms;
      m.last_error = r.last_error;
      m.delay_warned = m.delay_warned || r.delay_warned;
      if (r.finished) messages_.erase(it);
    }
    records.push_back(std::move(r));
    bounces.push_back(std::move(bounce));
    co_return spool_result<void>();
  }

  asio::awaitable<spool_result<std::size_t>> postpone(std::string account, std::int64_t until_ms,
                                                      parking_limits limits,
                                                      std::string reason) override {
    co_await yield();
    postponed.push_back({account, until_ms, reason});
    std::size_t n = 0;
    for (auto& [id, m] : messages_) {
      if (m.env.account != account || m.next_attempt_ms > now) continue;
      m.next_attempt_ms = std::min(until_ms, m.received_at * 1000 + limits.lifetime_ms);
      if (limits.delay_warning_ms > 0 && !m.delay_warned &&
          m.received_at * 1000 + limits.delay_warning_ms > now) {
        m.next_attempt_ms =
            std::min(m.next_attempt_ms, m.received_at * 1000 + limits.delay_warning_ms);
      }
      m.last_error = reason;
      ++n;
    }
    co_return n;
  }

  asio::awaitable<spool_result<std::size_t>> reschedule(std::string account,
                                                        std::int64_t when_ms) override {
    most_rescheduling = std::max(most_rescheduling, ++rescheduling);
    co_await yield();
    co_await yield();  // a long queue takes several jobs
    --rescheduling;
    log.push_back("reschedule " + account);
    std::size_t n = 0;
    for (auto& [id, m] : messages_) {
      if (m.env.account != account || m.next_attempt_ms <= when_ms) continue;
      m.next_attempt_ms = when_ms;
      ++n;
    }
    co_return n;
  }

  asio::awaitable<spool_result<sending_record>> sending_history(std::int64_t since_ms) override {
    co_await yield();
    sending_record out;
    for (const auto& r : history.sent) {
      if (r.sent_at_ms > since_ms) out.sent.push_back(r);
    }
    for (const auto& h : history.holds) {
      if (h.resumes_at_ms > since_ms) out.holds.push_back(h);
    }
    co_return out;
  }

  asio::awaitable<spool_result<void>> save_hold(std::string account,
                                                std::optional<hold_row> hold) override {
    co_await yield();
    log.push_back((hold ? "hold " + hold->state + " " : "release hold ") + account);
    saved_holds[account] = std::move(hold);
    co_return spool_result<void>();
  }

  asio::awaitable<spool_result<queue_change>> remove(std::vector<std::string> ids) override {
    co_await yield();
    std::string line = "remove";
    queue_change change;
    for (const auto& id : ids) {
      line += " " + id;
      if (messages_.erase(id) != 0) {
        ++change.changed;
      } else {
        change.unknown.push_back(id);
      }
    }
    log.push_back(line);
    co_return change;
  }

  bool queued(const std::string& id) const { return messages_.count(id) != 0; }
  queued_message& message(const std::string& id) { return messages_.at(id); }
  const queued_message& message(const std::string& id) const { return messages_.at(id); }

  struct postponement {
    std::string account;
    std::int64_t until_ms;
    std::string reason;
  };
  std::map<std::string, spool_failure> unreadable;  // content() fails for these ids
  std::map<std::string, std::string> contents;      // instead of content_of(id)
  std::map<std::string, int> content_reads;         // content() calls per id
  std::vector<std::string> log;                     // record, reschedule and remove, in order
  std::vector<delivery_record> records;
  std::size_t fresh_handed_out = 0;  // messages due() gave as the fresh share
  int rescheduling = 0;              // reschedule() calls under way
  int most_rescheduling = 0;
  std::vector<std::optional<generated_message>> bounces;  // stored with records[i]
  std::vector<postponement> postponed;
  sending_record history;  // what sending_history() reads back at start
  std::map<std::string, std::optional<hold_row>> saved_holds;

 private:
  std::vector<std::string> order_;  // oldest first
  std::map<std::string, queued_message> messages_;
};

const delivery_record* record_of(const fake_queue& q, const std::string& id) {
  for (const auto& r : q.records) {
    if (r.id == id) return &r;
  }
  return nullptr;
}

// --- the tokens ---------------------------------------------------------------

class fake_tokens final : public auth::token_source {
 public:
  asio::awaitable<auth::token_result> get_token(std::string account) override {
    co_await yield();
    gets.push_back(account);
    auto& queue = scripted[account];
    if (!queue.empty()) {
      auto r = queue.front();
      queue.pop_front();
      co_return r;
    }
    co_return auth::token_result{true, "token-" + account, auth::token_state::valid, ""};
  }
  void invalidate(const std::string& account, const std::string& access_token) override {
    invalidated.push_back(account + " " + access_token);
  }
  void record_delivery(const std::string& account, std::int64_t when) override {
    deliveries.push_back(account + " " + std::to_string(when));
  }
  std::vector<auth::account_status> status() const override { return states; }

  std::map<std::string, std::deque<auth::token_result>> scripted;  // answers before the default
  std::vector<auth::account_status> states;
  std::vector<std::string> gets;
  std::vector<std::string> invalidated;  // "account token"
  std::vector<std::string> deliveries;   // "account unix-seconds"
};

auth::account_status account(std::string address, auth::token_state state) {
  auth::account_status a;
  a.address = std::move(address);
  a.state = state;
  return a;
}

auth::token_result token(std::string access_token) {
  return {true, std::move(access_token), auth::token_state::valid, ""};
}
auth::token_result no_token(auth::token_state state, std::string error) {
  return {false, "", state, std::move(error)};
}

// --- the upstream ---------------------------------------------------------------

// What one connection saw.
struct connection_trace {
  std::string user;
  std::vector<std::string> tokens;  // every token it was offered
  std::vector<std::string> sent;    // the contents, in order
  bool authenticated = false;
  bool quit = false;
  bool closed = false;
};

class fake_upstream final : public upstream_connector {
 public:
  std::unique_ptr<upstream_connection> make_connection(std::string id) override;

  // Sends wait until release() (or until their connection is closed).
  void hold() { holding_ = true; }
  void release() {
    holding_ = false;
    for (auto* t : held_) t->cancel();
  }

  std::set<std::string> rejected_tokens;        // 535 after the XOAUTH2 dance
  std::map<std::string, smtp::reply> refusals;  // per recipient address; others get 250
  // A content (as sent) whose reading fails halfway, and how.
  std::map<std::string, spool_failure> cut_off;
  std::vector<connection_trace> connections;  // in the order they were made
  std::map<std::string, int> live;            // authenticated and not yet closed, per user
  std::map<std::string, int> most_live;
  int in_flight = 0;  // sends under way (waiting at the gate while held)

 private:
  friend class fake_connection;
  bool holding_ = false;
  std::set<asio::steady_timer*> held_;
};

class fake_connection final : public upstream_connection {
 public:
  fake_connection(fake_upstream& up, std::size_t index) : up_(up), index_(index) {}
  ~fake_connection() override { end(); }

  asio::awaitable<connect_result> connect() override {
    co_await yield();
    co_return connect_result{connect_status::ok, "", std::nullopt};
  }

  asio::awaitable<auth_result> authenticate(std::string user, std::string access_token) override {
    co_await yield();
    trace().user = user;
    trace().tokens.push_back(access_token);
    if (up_.rejected_tokens.count(access_token) != 0) {
      co_return auth_result{auth_status::token_rejected,
                            "535 5.7.8 Username and Password not accepted", std::nullopt};
    }
    trace().authenticated = true;
    usable_ = true;
    user_ = user;
    up_.most_live[user] = std::max(up_.most_live[user], ++up_.live[user]);
    co_return auth_result{auth_status::ok, "235 2.7.0 Accepted", std::nullopt};
  }

  asio::awaitable<send_result> send(const envelope& env, message_content& content) override {
    co_await yield();
    ++up_.in_flight;  // from here to the answer without yielding, unless held
    if (up_.holding_ && usable_) {
      asio::steady_timer gate(co_await asio::this_coro::executor,
                              asio::steady_timer::time_point::max());
      gate_ = &gate;
      up_.held_.insert(&gate);
      co_await gate.async_wait(asio::as_tuple(asio::use_awaitable));
      up_.held_.erase(&gate);
      gate_ = nullptr;
    }
    --up_.in_flight;
    send_result result;
    if (!usable_) {
      for (const auto& r : env.recipients) {
        result.recipients.push_back({r.address, delivery_status::deferred,
                                     smtp::make_reply(451, "4.4.2", "connection closed"), false});
      }
      result.message = "connection closed";
      co_return result;
    }
    const std::string bytes = read_all(content);
    if (auto cut = up_.cut_off.find(bytes); cut != up_.cut_off.end()) {
      // As the real client does when a read fails before the end of data.
      for (const auto& r : env.recipients) {
        result.recipients.push_back({r.address, delivery_status::deferred,
                                     smtp::make_reply(451, "4.4.2", "connection closed"), false});
      }
      result.content_failure = cut->second;
      end();
      co_return result;
    }
    trace().sent.emplace_back(bytes);
    for (const auto& r : env.recipients) {
      auto refusal = up_.refusals.find(r.address);
      if (refusal == up_.refusals.end()) {
        result.recipients.push_back(
            {r.address, delivery_status::delivered, smtp::make_reply(250, "2.0.0", "OK"), true});
      } else {
        result.recipients.push_back(
            {r.address,
             refusal->second.transient() ? delivery_status::deferred : delivery_status::failed,
             refusal->second, true});
      }
    }
    co_return result;
  }

  asio::awaitable<void> quit() override {
    co_await yield();
    trace().quit = true;
    end();
  }

  void close() override {
    trace().closed = true;
    if (gate_) gate_->cancel();
    end();
  }

  bool usable() const override { return usable_; }

 private:
  connection_trace& trace() { return up_.connections[index_]; }
  void end() {
    if (!usable_) return;
    usable_ = false;
    --up_.live[user_];
  }

  fake_upstream& up_;
  std::size_t index_;
  bool usable_ = false;
  std::string user_;
  asio::steady_timer* gate_ = nullptr;
};

std::unique_ptr<upstream_connection> fake_upstream::make_connection(std::string) {
  connections.emplace_back();
  return std::make_unique<fake_connection>(*this, connections.size() - 1);
}

const connection_trace* connection_of(const fake_upstream& up, const std::string& user) {
  for (const auto& c : up.connections) {
    if (c.user == user) return &c;
  }
  return nullptr;
}

// --- the fixture ------------------------------------------------------------------

class scheduler_test : public testing::Test {
 protected:
  scheduler_test() {
    settings.hostname = "relay.test";
    settings.upstream.host = "smtp.test";
    settings.upstream.max_connections = 2;
    settings.upstream.max_messages_per_connection = 100;
    settings.queue.retry_initial = 60s;
    settings.queue.retry_max = 3600s;
  }

  void TearDown() override {
    if (scheduler) stop();
  }

  void start() {
    scheduler = std::make_unique<delivery_scheduler>(io.get_executor(), queue, tokens, upstream,
                                                     settings, [] { return now; });
    scheduler->start();
  }

  // Runs the loop until `done`; false if it never is (a guard against a hang,
  // not a measure of time).
  template <typename Predicate>
  bool run_until(Predicate done) {
    const auto give_up = std::chrono::steady_clock::now() + 20s;
    while (!done()) {
      if (std::chrono::steady_clock::now() > give_up) return false;
      io.run_one_for(100ms);
    }
    return true;
  }

  bool recorded(std::size_t n) {
    return run_until([&] { return queue.records.size() >= n; });
  }

  // stop() ends all work: the loop runs out of it.
  void stop() {
    scheduler->stop();
    io.run_for(20s);
    EXPECT_TRUE(io.stopped()) << "work left after stop()";
    scheduler.reset();
  }

  asio::io_context io;
  fake_queue queue;
  fake_tokens tokens;
  fake_upstream upstream;
  config::settings settings;
  std::unique_ptr<delivery_scheduler> scheduler;
};

// --- connections ----------------------------------------------------------------------

TEST_F(scheduler_test, messages_of_two_accounts_go_to_their_own_connections) {
  settings.upstream.max_connections = 1;
  queue.add("m1", alice);
  queue.add("m2", bob);
  queue.add("m3", alice);
  start();
  ASSERT_TRUE(recorded(3));

  ASSERT_EQ(upstream.connections.size(), 2u);
  const auto* a = connection_of(upstream, alice);
  const auto* b = connection_of(upstream, bob);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->tokens, std::vector<std::string>{"token-" + alice});
  EXPECT_EQ(a->sent, (std::vector<std::string>{content_of("m1"), content_of("m3")}));
  EXPECT_EQ(b->sent, std::vector<std::string>{content_of("m2")});
  for (const auto* id : {"m1", "m2", "m3"}) {
    const auto* r = record_of(queue, id);
    ASSERT_TRUE(r) << id;
    EXPECT_TRUE(r->finished) << id;
    ASSERT_EQ(r->recipients.size(), 1u) << id;
    EXPECT_EQ(r->recipients[0].status, recipient_status::delivered) << id;
    EXPECT_EQ(r->recipients[0].reply, "250 2.0.0 OK") << id;
    EXPECT_FALSE(queue.queued(id)) << id;
  }
  const auto when = std::to_string(now / 1000);
  EXPECT_EQ(std::count(tokens.deliveries.begin(), tokens.deliveries.end(), alice + " " + when), 2);
  EXPECT_EQ(std::count(tokens.deliveries.begin(), tokens.deliveries.end(), bob + " " + when), 1);
  const auto& c = scheduler->counters();
  EXPECT_EQ(c.delivered_by_account.at(alice), 2u);
  EXPECT_EQ(c.delivered_by_account.at(bob), 1u);
  EXPECT_EQ(c.attempts_delivered, 3u);
  EXPECT_EQ(c.attempts_deferred, 0u);
  EXPECT_EQ(c.upstream_logins, 2u);
}

TEST_F(scheduler_test, at_most_max_connections_per_account) {
  settings.upstream.max_connections = 2;
  for (int i = 1; i <= 6; ++i) queue.add("m" + std::to_string(i), alice);
  upstream.hold();
  start();
  // Two sends wait: every connection there may be is open.
  ASSERT_TRUE(run_until([&] { return upstream.in_flight == 2; }));
  EXPECT_EQ(upstream.live[alice], 2);
  EXPECT_EQ(upstream.connections.size(), 2u);
  upstream.release();
  ASSERT_TRUE(recorded(6));

  EXPECT_EQ(upstream.most_live[alice], 2);
  ASSERT_EQ(upstream.connections.size(), 2u);
  std::vector<std::string> sent;
  for (const auto& c : upstream.connections) sent.insert(sent.end(), c.sent.begin(), c.sent.end());
  std::sort(sent.begin(), sent.end());
  std::vector<std::string> each;
  for (int i = 1; i <= 6; ++i) each.push_back(content_of("m" + std::to_string(i)));
  EXPECT_EQ(sent, each);  // each message exactly once
}

// A backlog goes oldest first, but mail that arrives meanwhile is not put
// behind all of it: it has its own line, and the connection takes from the
// two in turn.
TEST_F(scheduler_test, fresh_mail_is_not_kept_behind_a_backlog) {
  settings.upstream.max_connections = 1;
  settings.upstream.max_messages_per_connection = 1000;
  for (int i = 1; i <= 600; ++i) queue.add("b" + std::to_string(i), alice);
  upstream.hold();
  start();
  ASSERT_TRUE(run_until([&] { return upstream.in_flight == 1; }));
  for (int i = 1; i <= 3; ++i) queue.add("f" + std::to_string(i), alice);
  scheduler->wake();
  ASSERT_TRUE(run_until([&] { return queue.fresh_handed_out == 3; }));
  upstream.release();
  ASSERT_TRUE(recorded(603));

  ASSERT_EQ(upstream.connections.size(), 1u);
  const auto& sent = upstream.connections[0].sent;
  ASSERT_EQ(sent.size(), 603u);
  auto place = [&](const std::string& id) {
    return std::find(sent.begin(), sent.end(), content_of(id)) - sent.begin();
  };
  // b1 was on the connection; then fresh and backlog by turns.
  EXPECT_EQ(place("b1"), 0);
  EXPECT_EQ(place("f1"), 1);
  EXPECT_EQ(place("b2"), 2);
  EXPECT_EQ(place("f2"), 3);
  EXPECT_EQ(place("b3"), 4);
  EXPECT_EQ(place("f3"), 5);
  // The backlog itself in arrival order.
  for (int i = 4; i <= 600; ++i) EXPECT_EQ(place("b" + std::to_string(i)), i + 2) << i;
}

TEST_F(scheduler_test, a_connection_carries_at_most_max_messages_per_connection) {
  settings.upstream.max_connections = 1;
  settings.upstream.max_messages_per_connection = 2;
  for (int i = 1; i <= 5; ++i) queue.add("m" + std::to_string(i), alice);
  start();
  ASSERT_TRUE(recorded(5));

  ASSERT_EQ(upstream.connections.size(), 3u);
  EXPECT_EQ(upstream.connections[0].sent,
            (std::vector<std::string>{content_of("m1"), content_of("m2")}));
  EXPECT_EQ(upstream.connections[1].sent,
            (std::vector<std::string>{content_of("m3"), content_of("m4")}));
  EXPECT_EQ(upstream.connections[2].sent, std::vector<std::string>{content_of("m5")});
  // The full ones ended with QUIT; the last waits for more work.
  EXPECT_TRUE(upstream.connections[0].quit);
  EXPECT_TRUE(upstream.connections[1].quit);
  EXPECT_FALSE(upstream.connections[2].quit);
  EXPECT_EQ(upstream.most_live[alice], 1);
  EXPECT_EQ(scheduler->counters().upstream_logins, 3u);
  EXPECT_EQ(scheduler->counters().upstream_connections_active, 1u);
}

// --- tokens -----------------------------------------------------------------------

TEST_F(scheduler_test, a_535_invalidates_the_token_and_retries_once) {
  tokens.scripted[alice] = {token("stale"), token("fresh")};
  upstream.rejected_tokens = {"stale"};
  queue.add("m1", alice);
  start();
  ASSERT_TRUE(recorded(1));

  EXPECT_EQ(tokens.gets, (std::vector<std::string>{alice, alice}));
  EXPECT_EQ(tokens.invalidated, std::vector<std::string>{alice + " stale"});
  ASSERT_EQ(upstream.connections.size(), 2u);
  EXPECT_EQ(upstream.connections[0].tokens, std::vector<std::string>{"stale"});
  EXPECT_TRUE(upstream.connections[0].closed);
  EXPECT_TRUE(upstream.connections[0].sent.empty());
  EXPECT_EQ(upstream.connections[1].tokens, std::vector<std::string>{"fresh"});
  EXPECT_EQ(upstream.connections[1].sent, std::vector<std::string>{content_of("m1")});
  EXPECT_TRUE(queue.records[0].finished);
}

TEST_F(scheduler_test, a_second_535_defers_with_the_login_backoff) {
  tokens.scripted[alice] = {token("stale"), token("also-stale")};
  upstream.rejected_tokens = {"stale", "also-stale"};
  queue.add("m1", alice);
  start();
  ASSERT_TRUE(recorded(1));

  const std::string error =
      "upstream refused XOAUTH2 for alice@example.com: 535 5.7.8 Username and Password not "
      "accepted";
  EXPECT_EQ(tokens.gets.size(), 2u);
  EXPECT_EQ(tokens.invalidated, std::vector<std::string>{alice + " stale"});
  const auto& r = queue.records[0];
  EXPECT_FALSE(r.finished);
  EXPECT_TRUE(r.recipients.empty());
  EXPECT_EQ(r.next_attempt_ms, now + 120'000);  // retry_initial doubled: a login failure
  EXPECT_EQ(r.last_error, error);
  const auto& c = scheduler->counters();
  EXPECT_EQ(c.last_upstream_error, error);
  EXPECT_EQ(c.failures_in_a_row.at(alice), 1u);
  EXPECT_EQ(c.last_error_by_account.at(alice), error);
  EXPECT_EQ(c.attempts_deferred, 1u);
}

struct token_failure_case {
  auth::token_state state;
  std::int64_t wait_ms;
};

void PrintTo(const token_failure_case& c, std::ostream* os) {
  *os << auth::to_string(c.state);
}

class token_failure : public scheduler_test,
                      public testing::WithParamInterface<token_failure_case> {};

TEST_P(token_failure, defers_everything_waiting_for_the_account_with_the_given_delay) {
  settings.upstream.max_connections = 1;
  tokens.scripted[alice] = {no_token(GetParam().state, "no token for alice")};
  queue.add("m1", alice);
  queue.add("m2", alice);
  queue.add("m3", alice);
  start();
  ASSERT_TRUE(recorded(3));

  EXPECT_EQ(tokens.gets, std::vector<std::string>{alice});  // one attempt decides for all
  EXPECT_TRUE(upstream.connections.empty());
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& r = queue.records[i];
    EXPECT_EQ(r.id, "m" + std::to_string(i + 1));
    EXPECT_FALSE(r.finished);
    EXPECT_TRUE(r.recipients.empty());
    EXPECT_EQ(r.next_attempt_ms, now + GetParam().wait_ms);
    EXPECT_EQ(r.last_error, "no token for alice");
  }
  EXPECT_EQ(scheduler->counters().attempts_deferred, 3u);
  EXPECT_EQ(scheduler->counters().failures_in_a_row.at(alice), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    states, token_failure,
    testing::Values(token_failure_case{auth::token_state::refresh_failing, 120'000},
                    token_failure_case{auth::token_state::needs_reauth, 3'600'000}),
    [](const auto& info) { return std::string(auth::to_string(info.param.state)); });

TEST_F(scheduler_test, accounts_without_consent_are_parked_until_their_state_changes) {
  tokens.states = {account(alice, auth::token_state::needs_reauth),
                   account(bob, auth::token_state::missing),
                   account("carol@example.com", auth::token_state::valid)};
  queue.add("m1", alice);
  queue.add("m2", bob);
  queue.add("m3", "carol@example.com");
  start();
  ASSERT_TRUE(recorded(1));
  ASSERT_TRUE(run_until([&] { return queue.postponed.size() == 2; }));

  EXPECT_EQ(queue.postponed[0].account, alice);
  EXPECT_EQ(queue.postponed[0].until_ms, now + 3'600'000);
  EXPECT_EQ(queue.postponed[0].reason, auth::needs_reauth_message(alice));
  EXPECT_EQ(queue.postponed[1].account, bob);
  EXPECT_EQ(queue.postponed[1].until_ms, now + 3'600'000);
  EXPECT_EQ(queue.postponed[1].reason,
            "account bob@example.com is not authorized yet: run \"oauth-relayctl authorize "
            "bob@example.com\"");
  // Parked for retry_max: far within their five days' lifetime.
  EXPECT_EQ(queue.message("m1").next_attempt_ms, now + 3'600'000);
  EXPECT_EQ(tokens.gets, std::vector<std::string>{"carol@example.com"});
  EXPECT_EQ(queue.records[0].id, "m3");

  // Consent given: the parked mail is due at once and goes. The change is
  // reported twice (the token's state, the accounts' reload): the second
  // release waits for the first and runs after it, never beside it.
  tokens.states[0].state = auth::token_state::valid;
  scheduler->account_state_changed(alice, auth::token_state::valid);
  scheduler->account_state_changed(alice, auth::token_state::valid);
  ASSERT_TRUE(recorded(2));
  EXPECT_EQ(queue.records[1].id, "m1");
  EXPECT_TRUE(queue.records[1].finished);
  EXPECT_TRUE(queue.queued("m2"));
  EXPECT_EQ(queue.postponed.size(), 2u);
  ASSERT_TRUE(run_until(
      [&] { return std::count(queue.log.begin(), queue.log.end(), "reschedule " + alice) == 2; }));
  EXPECT_EQ(queue.most_rescheduling, 1);
}

TEST_F(scheduler_test, parked_mail_is_due_again_when_it_expires_and_then_bounces) {
  settings.queue.lifetime = 3600s;
  settings.accounts = {{alice, {alice}, false, {}, {}}, {"ops@example.com", {}, true, {}, {}}};
  tokens.states = {account(alice, auth::token_state::missing),
                   account("ops@example.com", auth::token_state::valid)};
  queue.add("young", alice);  // 60 s old: parked until its expiry, within retry_max
  queue.add("old", alice);
  queue.message("old").received_at = now / 1000 - 3600;  // expires now
  start();
  ASSERT_TRUE(recorded(1));
  ASSERT_TRUE(run_until([&] { return !queue.postponed.empty(); }));

  // The young one: parked once, due again when its lifetime ends.
  EXPECT_TRUE(queue.queued("young"));
  EXPECT_EQ(queue.message("young").next_attempt_ms, (now / 1000 - 60 + 3600) * 1000);
  // The old one: not parked again but failed, with no connection and no token asked for.
  ASSERT_EQ(queue.records.size(), 1u);
  const auto& r = queue.records[0];
  EXPECT_EQ(r.id, "old");
  EXPECT_TRUE(r.finished);
  const std::string why =
      "account alice@example.com is not authorized yet: run \"oauth-relayctl authorize "
      "alice@example.com\"";
  ASSERT_EQ(r.recipients.size(), 1u);
  EXPECT_EQ(r.recipients[0].status, recipient_status::failed);
  EXPECT_EQ(r.recipients[0].reply, "4.4.7 message expired after 1 hours in the queue: " + why);
  EXPECT_TRUE(upstream.connections.empty());
  EXPECT_TRUE(tokens.gets.empty());
  // One bounce, carried by the default account: alice's cannot send it.
  ASSERT_TRUE(queue.bounces[0].has_value());
  const auto& bounce = *queue.bounces[0];
  EXPECT_EQ(bounce.env.sender, "");
  EXPECT_EQ(bounce.env.account, "ops@example.com");
  ASSERT_EQ(bounce.env.recipients.size(), 1u);
  EXPECT_EQ(bounce.env.recipients[0].address, "app@example.com");
  EXPECT_NE(bounce.content.find("Status: 4.4.7\r\n"), std::string::npos);
  EXPECT_NE(bounce.content.find("Diagnostic-Code: X-Oauth-Relay; 4.4.7 message expired after 1 "
                                "hours in the queue: " +
                                why + "\r\n"),
            std::string::npos)
      << bounce.content;
  EXPECT_NE(bounce.content.find("Content-Type: message/rfc822\r\n\r\n" + content_of("old")),
            std::string::npos);
  EXPECT_EQ(scheduler->counters().bounced, 1u);
}

TEST_F(scheduler_test, without_a_usable_default_account_the_bounce_stays_with_the_original) {
  settings.queue.lifetime = 3600s;
  settings.accounts = {{alice, {alice}, true, {}, {}}};
  tokens.states = {account(alice, auth::token_state::needs_reauth)};
  queue.add("old", alice);
  queue.message("old").received_at = now / 1000 - 7200;
  start();
  ASSERT_TRUE(recorded(1));
  ASSERT_TRUE(queue.bounces[0].has_value());
  EXPECT_EQ(queue.bounces[0]->env.account, alice);
  EXPECT_EQ(
      queue.records[0].recipients.at(0).reply,
      "4.4.7 message expired after 2 hours in the queue: " + auth::needs_reauth_message(alice));
}

// --- the spool ----------------------------------------------------------------------

TEST_F(scheduler_test, a_message_whose_content_is_lost_fails_at_once_with_a_bounce) {
  queue.add("m1", alice, {"a@example.org", "b@example.org"});
  queue.add("m2", alice);
  queue.unreadable.emplace(
      "m1", spool_failure(spool_errc::lost, "message m1: cannot read /spool/m1: No such file"));
  start();
  ASSERT_TRUE(recorded(2));

  const auto* r = record_of(queue, "m1");
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->finished);
  ASSERT_EQ(r->recipients.size(), 2u);
  const std::string reply =
      "5.3.0 the message content is gone from the queue: message m1: cannot read /spool/m1: No "
      "such file";
  for (const auto& u : r->recipients) {
    EXPECT_EQ(u.status, recipient_status::failed);
    EXPECT_EQ(u.reply, reply);
  }
  EXPECT_FALSE(queue.queued("m1"));
  ASSERT_EQ(upstream.connections.size(), 1u);
  EXPECT_EQ(upstream.connections[0].sent, std::vector<std::string>{content_of("m2")});
  // The bounce says why and carries no copy.
  std::size_t i = 0;
  while (queue.records[i].id != "m1") ++i;
  ASSERT_TRUE(queue.bounces[i].has_value());
  const auto& c = queue.bounces[i]->content;
  EXPECT_NE(c.find("Status: 5.3.0\r\n"), std::string::npos) << c;
  EXPECT_NE(c.find("Diagnostic-Code: X-Oauth-Relay; " + reply + "\r\n"), std::string::npos) << c;
  EXPECT_NE(c.find("The message itself is not attached"), std::string::npos) << c;
  EXPECT_EQ(c.find("message/rfc822"), std::string::npos) << c;
  const auto& counters = scheduler->counters();
  EXPECT_EQ(counters.messages_lost, 1u);
  EXPECT_EQ(counters.last_lost_at, now / 1000);
  EXPECT_EQ(counters.last_lost, "m1: message m1: cannot read /spool/m1: No such file");
  EXPECT_EQ(counters.bounced, 1u);
}

TEST_F(scheduler_test, a_failed_content_read_defers_and_a_deleted_one_is_skipped) {
  settings.upstream.max_connections = 1;
  queue.add("m1", alice);
  queue.add("m2", alice);
  queue.add("m3", alice);
  queue.unreadable.emplace("m1", spool_failure(spool_errc::failed, "disk I/O error"));
  queue.unreadable.emplace("m2", spool_failure(spool_errc::not_found, "m2"));
  start();
  ASSERT_TRUE(recorded(2));

  ASSERT_EQ(queue.records.size(), 2u);
  const auto& deferred = queue.records[0];
  EXPECT_EQ(deferred.id, "m1");
  EXPECT_FALSE(deferred.finished);
  EXPECT_TRUE(deferred.recipients.empty());
  EXPECT_EQ(deferred.next_attempt_ms, now + 60'000);
  EXPECT_EQ(deferred.last_error, "cannot read the message content: disk I/O error");
  EXPECT_EQ(queue.records[1].id, "m3");
  EXPECT_TRUE(queue.records[1].finished);
  ASSERT_EQ(upstream.connections.size(), 1u);
  EXPECT_EQ(upstream.connections[0].sent, std::vector<std::string>{content_of("m3")});
  EXPECT_TRUE(queue.queued("m2"));  // not recorded, not sent: gone as far as delivery knows
  EXPECT_EQ(scheduler->counters().attempts_deferred, 1u);
  EXPECT_EQ(scheduler->counters().content_unreadable, 1u);
  EXPECT_EQ(scheduler->counters().messages_lost, 0u);
}

TEST_F(scheduler_test, a_content_that_cannot_be_read_to_its_end_is_lost_or_deferred) {
  settings.upstream.max_connections = 1;
  queue.add("m1", alice);
  queue.add("m2", alice);
  queue.add("m3", alice);
  const std::string shrunk = "message m1: /spool/m1 holds fewer than the 30 bytes that were stored";
  upstream.cut_off.emplace(content_of("m1"), spool_failure(spool_errc::lost, shrunk));
  upstream.cut_off.emplace(content_of("m2"), spool_failure(spool_errc::failed, "disk I/O error"));
  start();
  ASSERT_TRUE(recorded(3));

  ASSERT_EQ(queue.records[0].id, "m1");  // gone for good: failed with a bounce, no copy
  EXPECT_TRUE(queue.records[0].finished);
  ASSERT_EQ(queue.records[0].recipients.size(), 1u);
  EXPECT_EQ(queue.records[0].recipients[0].reply,
            "5.3.0 the message content is gone from the queue: " + shrunk);
  ASSERT_TRUE(queue.bounces[0].has_value());
  EXPECT_NE(queue.bounces[0]->content.find("The message itself is not attached"),
            std::string::npos);
  ASSERT_EQ(queue.records[1].id, "m2");  // may read later: deferred
  EXPECT_FALSE(queue.records[1].finished);
  EXPECT_TRUE(queue.records[1].recipients.empty());
  EXPECT_EQ(queue.records[1].last_error, "cannot read the message content: disk I/O error");
  EXPECT_EQ(queue.records[1].next_attempt_ms, now + 60'000);
  EXPECT_FALSE(queue.bounces[1].has_value());
  ASSERT_EQ(queue.records[2].id, "m3");
  EXPECT_TRUE(queue.records[2].finished);
  // Each cut closed its connection: m3 went out on a third one.
  ASSERT_EQ(upstream.connections.size(), 3u);
  EXPECT_TRUE(upstream.connections[0].sent.empty());
  EXPECT_TRUE(upstream.connections[1].sent.empty());
  EXPECT_EQ(upstream.connections[2].sent, std::vector<std::string>{content_of("m3")});
  EXPECT_EQ(scheduler->counters().messages_lost, 1u);
  EXPECT_EQ(scheduler->counters().content_unreadable, 1u);
}

TEST_F(scheduler_test, a_bounce_of_a_large_message_quotes_its_header_only) {
  upstream.refusals["nobody@example.org"] = smtp::reply{550, "5.1.1", {"no such user"}};
  queue.add("big", alice, {"nobody@example.org"});
  const std::string header = "Subject: big\r\nX-Filler: yes\r\n";
  std::string body;
  while (body.size() <= bounce_quote_limit) body += "a line of the body\r\n";
  queue.contents["big"] = header + "\r\n" + body;
  queue.message("big").size = queue.contents["big"].size();
  start();
  ASSERT_TRUE(recorded(1));

  ASSERT_TRUE(queue.bounces[0].has_value());
  const auto& c = queue.bounces[0]->content;
  EXPECT_NE(c.find("Only the header of your message is attached: it is " +
                   std::to_string(queue.contents["big"].size()) +
                   " bytes, more than the 1048576 bytes returned whole.\r\n"),
            std::string::npos)
      << c.substr(0, 2000);
  EXPECT_NE(c.find("Content-Type: text/rfc822-headers\r\n\r\n" + header + "\r\n--"),
            std::string::npos)
      << c.substr(0, 2000);
  EXPECT_EQ(c.find("a line of the body"), std::string::npos);
  EXPECT_EQ(c.find("message/rfc822"), std::string::npos);
  // The copy came from the content the attempt had open: no second read.
  EXPECT_EQ(queue.content_reads["big"], 1);
}

TEST_F(scheduler_test, a_message_expiring_without_its_content_read_is_quoted_from_the_spool) {
  settings.upstream.max_connections = 1;  // one worker: "old" waits behind "fresh"
  settings.queue.lifetime = 3600s;
  queue.add("fresh", alice);
  queue.add("old", alice);
  queue.message("old").received_at = now / 1000 - 7200;
  // The token endpoint is failing: no connection, and both share that fate.
  tokens.scripted[alice].push_back(
      no_token(auth::token_state::refresh_failing, "token endpoint unreachable"));
  start();
  ASSERT_TRUE(recorded(2));

  const auto* old = record_of(queue, "old");
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->finished);
  std::size_t i = 0;
  while (queue.records[i].id != "old") ++i;
  ASSERT_TRUE(queue.bounces[i].has_value());
  EXPECT_NE(
      queue.bounces[i]->content.find("Content-Type: message/rfc822\r\n\r\n" + content_of("old")),
      std::string::npos);
  EXPECT_EQ(queue.content_reads["old"], 1);  // read for the bounce alone
  EXPECT_FALSE(record_of(queue, "fresh")->finished);
}

TEST_F(scheduler_test, a_failed_recipient_bounce_is_stored_with_the_record) {
  upstream.refusals["nobody@example.org"] = smtp::reply{550, "5.1.1", {"no such user"}};
  queue.add("m1", alice, {"a@example.org", "nobody@example.org"});
  start();
  ASSERT_TRUE(recorded(1));

  const auto& r = queue.records[0];
  EXPECT_TRUE(r.finished);
  ASSERT_EQ(r.recipients.size(), 2u);
  EXPECT_EQ(r.recipients[1].status, recipient_status::failed);
  EXPECT_EQ(r.recipients[1].reply, "550 5.1.1 no such user");
  ASSERT_TRUE(queue.bounces[0].has_value());
  EXPECT_EQ(queue.bounces[0]->env.recipients.at(0).address, "app@example.com");
  EXPECT_NE(
      queue.bounces[0]->content.find("Content-Type: message/rfc822\r\n\r\n" + content_of("m1")),
      std::string::npos);
  const auto& c = scheduler->counters();
  EXPECT_EQ(c.bounced, 1u);
  EXPECT_EQ(c.attempts_delivered, 1u);
  EXPECT_EQ(c.attempts_failed, 1u);
  EXPECT_EQ(c.delivered_by_account.count(alice), 0u);
}

// --- administration ------------------------------------------------------------------

TEST_F(scheduler_test, a_message_in_flight_is_deleted_after_its_attempt_is_recorded) {
  settings.upstream.max_connections = 1;
  queue.add("m1", alice);
  queue.add("m2", alice);
  upstream.hold();
  start();
  ASSERT_TRUE(run_until([&] { return upstream.in_flight == 1; }));

  std::optional<queue_change> answer;
  scheduler->delete_messages({"m1", "m2", "m9"}, [&](spool_result<queue_change> c) {
    ASSERT_TRUE(c.has_value()) << c.error().detail;
    answer = std::move(*c);
  });
  ASSERT_TRUE(run_until([&] { return answer.has_value(); }));
  EXPECT_EQ(answer->changed, 2u);  // m2 now, m1 after its attempt
  EXPECT_EQ(answer->unknown, std::vector<std::string>{"m9"});
  EXPECT_TRUE(queue.queued("m1"));
  EXPECT_FALSE(queue.queued("m2"));

  upstream.release();
  ASSERT_TRUE(run_until([&] { return queue.log.size() == 3; }));
  EXPECT_FALSE(queue.queued("m1"));
  EXPECT_EQ(queue.log, (std::vector<std::string>{"remove m2 m9", "record m1", "remove m1"}));
  EXPECT_EQ(upstream.connections[0].sent, std::vector<std::string>{content_of("m1")});
}

TEST_F(scheduler_test, stop_closes_connections_and_ends_all_work) {
  queue.add("m1", alice);
  upstream.hold();
  start();
  ASSERT_TRUE(run_until([&] { return upstream.in_flight == 1; }));

  stop();  // asserts that the loop runs out of work
  ASSERT_EQ(upstream.connections.size(), 1u);
  EXPECT_TRUE(upstream.connections[0].closed);
  EXPECT_FALSE(upstream.connections[0].quit);
  EXPECT_TRUE(upstream.connections[0].sent.empty());
  // The attempt cut short is recorded as a deferral; the message stays queued.
  ASSERT_EQ(queue.records.size(), 1u);
  EXPECT_FALSE(queue.records[0].finished);
  EXPECT_EQ(queue.records[0].last_error, "451 4.4.2 connection closed");
  EXPECT_TRUE(queue.queued("m1"));
}

// --- sending limits and Gmail's quota answers --------------------------------------

TEST_F(scheduler_test, gmails_daily_limit_holds_the_account_and_bounces_nothing) {
  settings.upstream.max_connections = 1;
  upstream.refusals["quota@example.org"] =
      smtp::reply{550, "5.4.5", {"Daily user sending limit exceeded."}};
  queue.add("m1", alice, {"quota@example.org"});
  queue.add("m2", alice);
  queue.add("m3", alice);
  queue.add("m4", bob);
  start();
  ASSERT_TRUE(run_until([&] {
    return record_of(queue, "m1") && record_of(queue, "m4") && queue.postponed.size() == 1;
  }));

  const auto* r = record_of(queue, "m1");
  EXPECT_FALSE(r->finished);
  ASSERT_EQ(r->recipients.size(), 1u);
  EXPECT_EQ(r->recipients[0].status, recipient_status::pending);
  // No record of alice's before a window: Gmail is asked again after retry_max.
  const std::int64_t resumes = now + 3600 * 1000;
  EXPECT_EQ(r->next_attempt_ms, resumes);
  for (const auto& b : queue.bounces) EXPECT_FALSE(b.has_value());
  // The rest of alice's mail waits without being tried; bob's is not held.
  EXPECT_EQ(queue.postponed[0].account, alice);
  EXPECT_EQ(queue.postponed[0].until_ms, resumes);
  EXPECT_EQ(queue.message("m2").next_attempt_ms, resumes);
  EXPECT_EQ(queue.message("m3").next_attempt_ms, resumes);
  EXPECT_EQ(connection_of(upstream, alice)->sent.size(), 1u);
  EXPECT_FALSE(queue.queued("m4"));
  const auto status = scheduler->sending(alice);
  EXPECT_EQ(status.state, sending_state::over_quota);
  EXPECT_EQ(status.resumes_at_ms, resumes);
  EXPECT_EQ(scheduler->sending(bob).state, sending_state::ok);
  ASSERT_TRUE(queue.saved_holds[alice].has_value());
  EXPECT_EQ(queue.saved_holds[alice]->state, "over_quota");
  EXPECT_EQ(queue.saved_holds[alice]->resumes_at_ms, resumes);
  // A pause Gmail asked for is not a failing account.
  EXPECT_EQ(scheduler->counters().failures_in_a_row.count(alice), 0u);
}

TEST_F(scheduler_test, the_message_that_would_go_over_messages_per_day_is_not_sent) {
  settings.upstream.max_connections = 1;
  config::account_settings a;
  a.address = alice;
  a.limits.messages_per_day = 2;
  settings.accounts.push_back(a);
  for (int i = 1; i <= 3; ++i) queue.add("m" + std::to_string(i), alice);
  start();
  ASSERT_TRUE(run_until([&] { return queue.records.size() == 2 && !queue.postponed.empty(); }));

  EXPECT_EQ(connection_of(upstream, alice)->sent,
            (std::vector<std::string>{content_of("m1"), content_of("m2")}));
  EXPECT_EQ(queue.postponed[0].until_ms, now + 24 * 3600 * 1000);
  EXPECT_EQ(queue.postponed[0].reason,
            "limits.messages_per_day (2) reached: 2 messages sent in the last 24 hours");
  EXPECT_EQ(queue.message("m3").attempts, 0);  // held, not attempted
  EXPECT_EQ(record_of(queue, "m1")->sent_recipients, 1u);
  EXPECT_EQ(record_of(queue, "m1")->sent_at_ms, now);
  const auto status = scheduler->sending(alice);
  EXPECT_EQ(status.state, sending_state::over_quota);
  EXPECT_EQ(status.sent_messages, 2u);
  // The relay's own limit is worked out again from the record: not stored.
  EXPECT_EQ(queue.saved_holds.count(alice), 0u);
}

TEST_F(scheduler_test, the_sending_record_read_back_at_start_counts_against_the_limits) {
  config::account_settings a;
  a.address = alice;
  a.limits.messages_per_day = 2;
  settings.accounts.push_back(a);
  queue.history.sent = {{alice, now - 3600'000, 1}, {alice, now - 1800'000, 1}};
  queue.add("m1", alice);
  start();
  ASSERT_TRUE(run_until([&] { return !queue.postponed.empty(); }));
  EXPECT_TRUE(upstream.connections.empty() || connection_of(upstream, alice)->sent.empty());
  EXPECT_EQ(queue.message("m1").next_attempt_ms, now - 3600'000 + 24 * 3600 * 1000);
}

TEST_F(scheduler_test, a_stored_hold_is_on_again_after_a_restart) {
  queue.history.holds = {{alice, "throttled", now - 1000, now + 60'000, 1, "Gmail asks"}};
  queue.add("m1", alice);
  start();
  ASSERT_TRUE(run_until([&] { return !queue.postponed.empty(); }));
  EXPECT_TRUE(upstream.connections.empty());
  EXPECT_EQ(queue.message("m1").next_attempt_ms, now + 60'000);
  EXPECT_EQ(scheduler->sending(alice).state, sending_state::throttled);
}

}  // namespace
}  // namespace oauth_relay::relay
