// Gmail's sending limits and outages against the real oauth-relayd: the
// stand-in answers 550 5.4.5 past its daily limit and 421 4.7.0 on demand,
// and refuses connections for a while; nothing bounces, nothing is lost or
// sent twice, the account's state says when it resumes, and an outage is a
// handful of log lines, not one per message.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "integration/support/ctl_process.hpp"
#include "integration/support/google_fakes.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr const char* fast_retries = "queue:\n  retry_initial: 1s\n  retry_max: 2s\n";

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class sending_limits : public testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure() || !relay_) return;
    const auto log = relay_->log();
    std::cerr << "---- oauth-relayd log (tail)\n"
              << log.substr(log.size() > 30000 ? log.size() - 30000 : 0);
  }

  // `account_extra` lines go under the account (four spaces).
  void start(const std::string& account_extra = "", const std::string& upstream_extra = "") {
    relay_ = std::make_unique<relay_process>(google_.config(fast_retries, upstream_extra) +
                                             account_extra);
    google_.store_token(relay_->state_dir(), relay_->key_file());
    relay_->start();
  }

  void restart() {
    ASSERT_EQ(relay_->stop(SIGTERM), 0);
    relay_->start();
  }

  std::vector<std::string> send_accepted(const std::string& prefix, int count) {
    std::vector<std::string> tags;
    for (int i = 0; i < count; ++i) {
      const std::string tag = prefix + "-" + std::to_string(i);
      const auto message = make_test_message(tag, 1024);
      smtp_client client(relay_->port());
      const auto reply =
          client.send_message(google_fakes::account, {"rcpt@example.org"}, message.stuffed());
      EXPECT_EQ(reply.code, 250) << tag << ": " << reply.str();
      if (reply.code == 250) tags.push_back(tag);
    }
    return tags;
  }

  std::vector<relay::queued_message> queue() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value();
  }

  bool wait_drained(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (queue().empty()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  json get(const std::string& socket, const std::string& path) {
    auto r = run_command({"curl", "--silent", "--max-time", "10", "--unix-socket",
                          (relay_->dir() / socket).string(), "http://localhost" + path});
    EXPECT_EQ(r.status, 0) << r.err;
    if (path == "/metrics") return json(r.out);
    return json::parse(r.out, nullptr, false);
  }
  json account_entry() { return get("control.sock", "/accounts")["accounts"][0]; }
  json health() { return get("health.sock", "/health"); }

  // Polls `done` for up to `timeout`.
  template <typename Predicate>
  bool eventually(Predicate done, std::chrono::milliseconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  // Every tag arrived exactly once and nothing else did.
  void expect_each_once(const std::vector<std::string>& tags) {
    std::map<std::string, int> seen;
    for (const auto& m : google_.messages()) ++seen[tag_of(m.content)];
    for (const auto& tag : tags) {
      EXPECT_EQ(seen[tag], 1) << tag;
      seen.erase(tag);
    }
    for (const auto& [tag, n] : seen) ADD_FAILURE() << tag << " arrived " << n << " times";
  }

  // No bounce was made: every queued message is one the test sent.
  void expect_no_bounce() {
    for (const auto& m : queue()) EXPECT_EQ(m.env.sender, google_fakes::account) << m.id;
    EXPECT_EQ(occurrences(relay_->log(), "bounce="), 0u);
  }

  google_fakes google_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(sending_limits, gmails_daily_limit_bounces_nothing_and_everything_goes_once_the_day_moves) {
  google_.gmail().daily_limit(3);
  start();
  const auto tags = send_accepted("quota", 6);
  ASSERT_TRUE(google_.gmail().wait_for_messages(3, 20s));
  ASSERT_TRUE(eventually([&] { return account_entry()["sending_state"] == "over_quota"; }));
  const auto entry = account_entry();
  EXPECT_TRUE(entry["resumes_at"].is_string()) << entry.dump();
  EXPECT_EQ(entry["sent_24h"], 3);
  expect_no_bounce();
  EXPECT_EQ(queue().size(), 3u);
  auto h = health();
  EXPECT_EQ(h["status"], "degraded");
  ASSERT_EQ(h["problems"].size(), 1u) << h.dump();
  EXPECT_EQ(h["problems"][0].get<std::string>().rfind(
                "account sender@example.com is over its daily sending limit (Gmail's daily "
                "sending limit for the account is used up (550 5.4.5 Daily user sending limit "
                "exceeded.",
                0),
            0u)
      << h["problems"][0];
  EXPECT_EQ(occurrences(relay_->log(), "event=account_sending_held"), 1u);

  // A day later, as far as the relay's record and Gmail go: the record's
  // times move back until the oldest leaves the window in a second.
  ASSERT_EQ(relay_->stop(SIGTERM), 0);
  const auto moved = run_command(
      {"sqlite3", (relay_->state_dir() / "queue.db").string(),
       "UPDATE sent_log SET sent_at_ms = sent_at_ms - 86400000 + 1000; SELECT changes();"});
  ASSERT_EQ(moved.out, "3\n") << moved.err;
  google_.gmail().daily_limit(0);
  relay_->start();
  ASSERT_TRUE(wait_drained(30s));
  expect_each_once(tags);
  EXPECT_TRUE(eventually([&] { return account_entry()["sending_state"] == "ok"; }));
  EXPECT_TRUE(eventually([&] { return health()["status"] == "ok"; }));
}

TEST_F(sending_limits, try_again_later_holds_the_account_then_it_resumes_by_itself) {
  start();
  google_.gmail().throttle_mail_421(2);
  const auto tags = send_accepted("throttled", 4);
  ASSERT_TRUE(wait_drained(30s));
  expect_each_once(tags);
  EXPECT_GE(occurrences(relay_->log(), "event=account_sending_held"), 1u);
  EXPECT_NE(relay_->log().find("state=throttled"), std::string::npos);
  EXPECT_EQ(occurrences(relay_->log(), "bounce="), 0u);
}

TEST_F(sending_limits, try_again_later_at_random_costs_no_message) {
  start();
  // A quarter of all MAIL commands refused as Gmail does to a client that
  // sends too fast, while the mail keeps arriving.
  google_.gmail().throttle_mail_421_at_random(0.25, 20261201);
  const auto tags = send_accepted("random", 20);
  ASSERT_TRUE(wait_drained(90s));
  expect_each_once(tags);
  EXPECT_GE(google_.gmail().throttled_mails(), 1u);
  EXPECT_EQ(occurrences(relay_->log(), "bounce="), 0u);
  EXPECT_EQ(occurrences(relay_->log(), "event=delivery_failed"), 0u);
  EXPECT_TRUE(eventually([&] { return account_entry()["sending_state"] == "ok"; }));
}

TEST_F(sending_limits, the_eleventh_message_of_the_day_never_reaches_gmail_even_after_a_restart) {
  start("    limits:\n      messages_per_day: 10\n");
  const auto tags = send_accepted("limited", 11);
  ASSERT_TRUE(google_.gmail().wait_for_messages(10, 20s));
  ASSERT_TRUE(eventually([&] { return account_entry()["sending_state"] == "over_quota"; }));
  auto entry = account_entry();
  EXPECT_EQ(entry["sent_24h"], 10);
  EXPECT_TRUE(entry["resumes_at"].is_string());
  EXPECT_EQ(entry["sending_reason"],
            "limits.messages_per_day (10) reached: 10 messages sent in the last 24 hours");
  ASSERT_EQ(queue().size(), 1u);
  EXPECT_EQ(queue()[0].attempts, 0);  // held, never tried
  // oauth-relayctl accounts says so under its table.
  const auto listed = run_ctl({"-c", relay_->config_path().string(), "accounts"});
  ASSERT_EQ(listed.status, 0) << listed.err;
  ASSERT_FALSE(listed.out_lines.empty());
  EXPECT_EQ(listed.out_lines.back(),
            "held sender@example.com: over_quota until " + entry["resumes_at"].get<std::string>() +
                " (limits.messages_per_day (10) reached: 10 messages sent in the last 24 "
                "hours); its mail waits and goes out by itself");

  restart();
  // The record survived: the message is held again, not sent.
  ASSERT_TRUE(eventually([&] { return account_entry()["sending_state"] == "over_quota"; }));
  EXPECT_EQ(account_entry()["sent_24h"], 10);
  ASSERT_EQ(queue().size(), 1u);
  EXPECT_EQ(google_.message_count(), 10u);
  expect_no_bounce();
}

TEST_F(sending_limits, an_outage_is_one_event_in_the_log_and_health_says_so_while_it_lasts) {
  start("", "  outage_alert_after: 2s\n");
  auto tags = send_accepted("before", 2);
  ASSERT_TRUE(google_.gmail().wait_for_messages(2, 20s));
  google_.stop_gmail();
  // Steady load while Gmail refuses connections: 10 messages a second.
  bool degraded_seen = false;
  for (int i = 0; i < 40; ++i) {
    const auto more = send_accepted("during-" + std::to_string(i), 1);
    tags.insert(tags.end(), more.begin(), more.end());
    std::this_thread::sleep_for(100ms);
    if (i % 10 == 9 && !degraded_seen) {
      const auto h = health();
      if (h["status"] == "degraded") {
        degraded_seen = true;
        ASSERT_EQ(h["problems"].size(), 1u) << h.dump();
        EXPECT_EQ(h["problems"][0].get<std::string>().rfind(
                      "account sender@example.com: the upstream has been unreachable for ", 0),
                  0u)
            << h["problems"][0];
        EXPECT_NE(get("health.sock", "/metrics")
                      .get<std::string>()
                      .find("oauth_relay_upstream_up{account=\"sender@example.com\"} 0"),
                  std::string::npos);
      }
    }
  }
  EXPECT_TRUE(degraded_seen);
  google_.start_gmail();
  ASSERT_TRUE(wait_drained(60s));
  expect_each_once(tags);
  EXPECT_TRUE(eventually([&] { return health()["status"] == "ok"; }));
  EXPECT_NE(get("health.sock", "/metrics")
                .get<std::string>()
                .find("oauth_relay_upstream_up{account=\"sender@example.com\"} 1"),
            std::string::npos);
  // The outage in the log: when it began and when it ended (and a summary
  // a minute, which this one is too short for), not a line per message.
  const auto log = relay_->log();
  EXPECT_EQ(occurrences(log, "event=upstream_unreachable"), 1u);
  EXPECT_EQ(occurrences(log, "event=upstream_reachable"), 1u);
  // At most the one message that was on the connection open when Gmail
  // went away has a line of its own.
  EXPECT_LE(occurrences(log, "event=delivery_deferred"), 1u);
  EXPECT_EQ(occurrences(log, "event=upstream_connect_failed"), 0u);
  EXPECT_LE(occurrences(log, "unreachable"), 3u);
}

}  // namespace
}  // namespace oauth_relay::test_support
