// The health rules and their sentences, the JSON bodies and the Prometheus
// text, checked exactly and with the strict exposition parser.
#include "daemon/health_report.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "integration/support/prometheus_text.hpp"

namespace oauth_relay::daemon {
namespace {

using nlohmann::json;
using test_support::parse_prometheus;

constexpr std::int64_t now = 1'796'000'000;  // 2026-11-30T...

account_health account(const std::string& address, auth::token_state state) {
  account_health a;
  a.status.address = address;
  a.status.state = state;
  return a;
}

health_input healthy_input() {
  health_input in;
  in.now = now;
  in.uptime_seconds = 42;
  in.accounts.push_back(account("alice@example.com", auth::token_state::valid));
  in.accounts.push_back(account("ops@example.com", auth::token_state::expired));
  return in;
}

TEST(health_rules, valid_and_expired_accounts_and_an_empty_queue_are_healthy) {
  auto verdict = evaluate(healthy_input());
  EXPECT_TRUE(verdict.healthy);
  EXPECT_TRUE(verdict.problems.empty());
}

TEST(health_rules, each_token_problem_is_one_sentence_naming_the_account_and_the_fix) {
  auto in = healthy_input();
  in.accounts.push_back(account("bob@example.com", auth::token_state::needs_reauth));
  in.accounts.push_back(account("carol@example.com", auth::token_state::missing));
  auto failing = account("dave@example.com", auth::token_state::refresh_failing);
  failing.status.last_error = "token endpoint unreachable: Connection refused";
  in.accounts.push_back(failing);
  auto verdict = evaluate(in);
  EXPECT_FALSE(verdict.healthy);
  EXPECT_EQ(
      verdict.problems,
      (std::vector<std::string>{
          "account bob@example.com needs re-authorization: run \"oauth-relayctl authorize "
          "bob@example.com\" (the refresh token was revoked, or expired after 7 days because "
          "the OAuth consent screen is in Testing)",
          "account carol@example.com is not authorized yet: run \"oauth-relayctl authorize "
          "carol@example.com\"",
          "account dave@example.com cannot refresh its access token (token endpoint "
          "unreachable: Connection refused): check that the token endpoint is reachable and "
          "the oauth settings are right, then run \"oauth-relayctl test dave@example.com\""}));
}

TEST(health_rules, a_message_older_than_an_hour_degrades) {
  auto in = healthy_input();
  in.queue.depth = 2;
  in.queue.oldest_received_at = now - 3600;
  EXPECT_TRUE(evaluate(in).healthy);  // exactly an hour is still fine
  in.queue.oldest_received_at = now - 3601;
  auto verdict = evaluate(in);
  EXPECT_FALSE(verdict.healthy);
  EXPECT_EQ(verdict.problems,
            std::vector<std::string>{
                "the oldest queued message has waited 60 minutes (more than 1 hour): run "
                "\"oauth-relayctl queue\" to see why it is not delivered"});
  in.queue.oldest_received_at = now - 5 * 3600;
  EXPECT_EQ(evaluate(in).problems.at(0).substr(0, 47),
            "the oldest queued message has waited 5 hours (m");
}

TEST(health_rules, a_queue_that_could_not_be_read_degrades_and_says_why) {
  auto in = healthy_input();
  in.queue_error = "/var/lib/oauth-relay/queue.db: disk I/O error";
  auto verdict = evaluate(in);
  EXPECT_FALSE(verdict.healthy);
  EXPECT_EQ(verdict.problems,
            std::vector<std::string>{
                "the queue could not be read (/var/lib/oauth-relay/queue.db: disk I/O error): "
                "check the state directory's disk and the journal of oauth-relay"});
  const auto body = json::parse(health_json(in, verdict, "1.2.3"));
  EXPECT_EQ(body["status"], "degraded");
  EXPECT_EQ(body["problems"].size(), 1u);
}

TEST(health_rules, three_temporary_failures_in_a_row_degrade_unless_the_token_is_the_cause) {
  auto in = healthy_input();
  in.accounts[0].failures_in_a_row = 2;
  in.accounts[0].last_delivery_error = "421 4.7.0 Try again later";
  EXPECT_TRUE(evaluate(in).healthy);
  in.accounts[0].failures_in_a_row = 3;
  auto verdict = evaluate(in);
  EXPECT_FALSE(verdict.healthy);
  EXPECT_EQ(verdict.problems,
            std::vector<std::string>{
                "account alice@example.com: the last 3 delivery attempts failed temporarily (421 "
                "4.7.0 Try again later): run \"oauth-relayctl test alice@example.com\" to see what "
                "fails"});
  in.accounts[0].status.state = auth::token_state::needs_reauth;
  verdict = evaluate(in);
  ASSERT_EQ(verdict.problems.size(), 1u);
  EXPECT_EQ(verdict.problems[0].rfind("account alice@example.com needs re-authorization", 0), 0u);
}

TEST(health_rules, a_refusal_that_named_its_cause_is_said_as_it_was) {
  auto in = healthy_input();
  // Microsoft's AADSTS cause, as the token manager wrote it when the refusal came.
  auto erin = account("erin@contoso.com", auth::token_state::needs_reauth);
  erin.status.last_error =
      "account erin@contoso.com needs re-authorization: Microsoft refused the refresh token "
      "(AADSTS700082: expired for inactivity). To fix it, run: oauth-relayctl authorize "
      "erin@contoso.com";
  in.accounts.push_back(erin);
  // Anything else in last_error is not that sentence: the general one is said.
  auto frank = account("frank@example.com", auth::token_state::needs_reauth);
  frank.status.last_error = "token revoked";
  in.accounts.push_back(frank);
  const auto verdict = evaluate(in);
  ASSERT_EQ(verdict.problems.size(), 2u);
  EXPECT_EQ(verdict.problems[0], erin.status.last_error);
  EXPECT_EQ(verdict.problems[1], auth::needs_reauth_message("frank@example.com"));
}

TEST(health_rules, a_message_whose_content_was_lost_degrades_for_a_day) {
  auto in = healthy_input();
  in.messages_lost = 2;
  in.last_lost_at = now - 3600;
  in.last_lost = "abc123: cannot read /var/lib/oauth-relay/spool/abc123: No such file or directory";
  auto verdict = evaluate(in);
  EXPECT_FALSE(verdict.healthy);
  EXPECT_EQ(verdict.problems,
            std::vector<std::string>{
                "2 messages were failed and bounced because the content was gone from the queue "
                "(last: abc123: cannot read /var/lib/oauth-relay/spool/abc123: No such file or "
                "directory): check what removes or changes files in the state directory's spool/ "
                "and its disk"});
  in.messages_lost = 1;
  EXPECT_NE(evaluate(in).problems.at(0).find("1 message was failed"), std::string::npos);
  in.last_lost_at = now - 24 * 3600;
  EXPECT_TRUE(evaluate(in).healthy);
}

TEST(health_json, has_every_contract_field_with_nulls_where_unknown) {
  auto in = healthy_input();
  in.queue = {3, 1, now - 120};
  in.accounts[0].status.access_expires_in_seconds = 1800;
  in.accounts[0].status.last_delivery = 1'796'025'600;  // 2026-11-30T08:00:00Z
  in.accounts[1].failures_in_a_row = 1;
  in.accounts[1].last_delivery_error = "upstream 127.0.0.1: connection refused";
  const auto body = json::parse(health_json(in, evaluate(in), "0.1.0"));
  EXPECT_EQ(body, json::parse(R"({
    "status": "ok", "version": "0.1.0", "uptime_seconds": 42,
    "queue": {"depth": 3, "deferred": 1, "oldest_age_seconds": 120},
    "accounts": [
      {"address": "alice@example.com", "token_state": "valid", "access_expires_in_seconds": 1800,
       "last_delivery": "2026-11-30T08:00:00Z", "last_error": null, "sending_state": "ok",
       "resumes_at": null},
      {"address": "ops@example.com", "token_state": "expired", "access_expires_in_seconds": null,
       "last_delivery": null, "last_error": "upstream 127.0.0.1: connection refused",
       "sending_state": "ok", "resumes_at": null}],
    "problems": []})"));
}

TEST(health_rules, a_held_account_degrades_saying_when_it_resumes_and_what_to_do) {
  auto in = healthy_input();
  in.accounts[0].sending_state = "over_quota";
  in.accounts[0].resumes_at = 1'796'025'600;  // 2026-11-30T08:00:00Z
  in.accounts[0].sending_reason =
      "Gmail's daily sending limit for the account is used up (550 5.4.5 Daily user sending "
      "limit exceeded. for rcpt@example.org)";
  in.accounts[1].sending_state = "throttled";
  in.accounts[1].resumes_at = 1'796'025'660;
  in.accounts[1].sending_reason = "Gmail asks the relay to send more slowly (421 4.7.0)";
  const auto verdict = evaluate(in);
  EXPECT_FALSE(verdict.healthy);
  EXPECT_EQ(verdict.problems,
            (std::vector<std::string>{
                "account alice@example.com is over its daily sending limit (Gmail's daily "
                "sending limit for the account is used up (550 5.4.5 Daily user sending limit "
                "exceeded. for [address])): its mail waits in the queue and goes out by itself "
                "from 2026-11-30T08:00:00Z; nothing is lost. To send more per day, spread the "
                "senders over more accounts or use a Google Workspace account (2,000 a day "
                "instead of about 500)",
                "account ops@example.com is throttled by Gmail (Gmail asks the relay to send "
                "more slowly (421 4.7.0)): its mail waits in the queue and goes out by itself "
                "from 2026-11-30T08:01:00Z; if this happens often, lower "
                "upstream.max_connections"}));
  const auto body = json::parse(health_json(in, verdict, "0.1.0"));
  EXPECT_EQ(body["accounts"][0]["sending_state"], "over_quota");
  // Held by its own limits, the advice is about the config.
  in.accounts[0].sending_reason = "limits.messages_per_day (450) reached";
  in.accounts.pop_back();
  EXPECT_EQ(evaluate(in).problems,
            std::vector<std::string>{
                "account alice@example.com is over its daily sending limit "
                "(limits.messages_per_day (450) reached): its mail waits in the queue and goes "
                "out by itself from 2026-11-30T08:00:00Z; nothing is lost. To send more per "
                "day, raise the account's limits in the config (Gmail allows about 500 a day, "
                "2,000 for Google Workspace)"});
  // Paced by messages_per_minute: a minute's wait, not a day's.
  in.accounts[0].sending_reason =
      "limits.messages_per_minute (30) reached: 30 messages sent in the last minute";
  EXPECT_EQ(evaluate(in).problems,
            std::vector<std::string>{
                "account alice@example.com is at its sending limit per minute "
                "(limits.messages_per_minute (30) reached: 30 messages sent in the last minute): "
                "its mail waits in the queue and goes out by itself from 2026-11-30T08:00:00Z; "
                "nothing is lost. To send more per minute, raise limits.messages_per_minute in "
                "the config (Exchange Online allows 30 a minute)"});
  EXPECT_EQ(body["accounts"][0]["resumes_at"], "2026-11-30T08:00:00Z");
}

TEST(health_rules, an_unreachable_upstream_degrades_once_it_lasted_outage_alert_after) {
  auto in = healthy_input();
  in.outage_alert_after = std::chrono::seconds(300);
  in.accounts[0].upstream_down_since = now - 299;
  in.accounts[0].upstream_down_reason = "upstream smtp.gmail.com: connect: Connection refused";
  in.accounts[0].upstream_down_messages = 12;
  EXPECT_TRUE(evaluate(in).healthy);  // a blip is retried without an alarm
  in.accounts[0].upstream_down_since = now - 300;
  const auto verdict = evaluate(in);
  EXPECT_EQ(verdict.problems,
            (std::vector<std::string>{
                "account alice@example.com: the upstream has been unreachable for 5 minutes "
                "(since " +
                iso8601_utc(now - 300) +
                ": upstream smtp.gmail.com: connect: Connection refused); 12 messages wait in "
                "the queue and go out by themselves once it answers. Check the network, DNS and "
                "firewall toward it and run \"oauth-relayctl test alice@example.com\""}));
}

TEST(health_json, says_degraded_with_the_problems) {
  auto in = healthy_input();
  in.accounts[1].status.state = auth::token_state::missing;
  const auto body = json::parse(health_json(in, evaluate(in), "0.1.0"));
  EXPECT_EQ(body["status"], "degraded");
  EXPECT_EQ(body["problems"].size(), 1u);
  EXPECT_EQ(body["queue"]["oldest_age_seconds"], 0);
}

// Monitoring sees the account's address, never a queued message's sender or
// recipients, even when the upstream's reply quotes them.
TEST(health_json, hides_every_address_but_the_accounts_in_delivery_errors) {
  auto in = healthy_input();
  in.accounts[0].failures_in_a_row = 3;
  in.accounts[0].last_delivery_error =
      "MAIL refused: 451 4.7.1 <payroll@billing.example.com>: sender of alice@example.com "
      "(Alice@Example.com) deferred for bob.smith+x@partner.example.org.";
  const std::string hidden =
      "MAIL refused: 451 4.7.1 <[address]>: sender of alice@example.com (Alice@Example.com) "
      "deferred for [address].";
  const auto text = health_json(in, evaluate(in), "0.1.0");
  EXPECT_EQ(text.find("payroll"), std::string::npos) << text;
  EXPECT_EQ(text.find("partner.example.org"), std::string::npos) << text;
  const auto body = json::parse(text);
  EXPECT_EQ(body["accounts"][0]["last_error"], hidden);
  EXPECT_EQ(body["problems"][0],
            "account alice@example.com: the last 3 delivery attempts failed temporarily (" +
                hidden + "): run \"oauth-relayctl test alice@example.com\" to see what fails");
}

TEST(without_addresses, replaces_addr_specs_and_leaves_other_at_signs) {
  EXPECT_EQ(without_addresses("", "a@b"), "");
  EXPECT_EQ(without_addresses("no address here", "a@b"), "no address here");
  EXPECT_EQ(without_addresses("x@y.example", "a@b"), "[address]");
  EXPECT_EQ(without_addresses("a@b, c@d: refused", "a@b"), "a@b, [address]: refused");
  EXPECT_EQ(without_addresses("@ alone, trailing@ and @leading", "a@b"),
            "@ alone, trailing@ and @leading");
  EXPECT_EQ(without_addresses("<o'neil@[192.0.2.1]>", ""), "<[address]>");
  EXPECT_EQ(without_addresses("<a@b.example>,<c@d.example>", ""), "<[address]>,<[address]>");
}

TEST(queue_json, lists_messages_with_recipient_states) {
  relay::queued_message m;
  m.id = "0123456789abcdef";
  m.received_at = now - 90;
  m.env.sender = "app@example.com";
  m.env.account = "alice@example.com";
  m.size = 1234;
  m.attempts = 2;
  m.next_attempt_ms = now * 1000 + 59'001;
  m.last_error = "421 4.7.0 Try again later";
  m.recipients = {
      {{"a@example.org", {}}, relay::recipient_status::delivered, "250 2.0.0 OK"},
      {{"b@example.org", {}}, relay::recipient_status::pending, ""},
      {{"c@example.org", {}}, relay::recipient_status::failed, "550 5.1.1 no such user"}};
  relay::queued_message due = m;
  due.id = "fedcba9876543210";
  due.next_attempt_ms = now * 1000 - 5000;
  due.last_error.clear();
  const auto body = json::parse(queue_json({{m, due}, 4711}, now * 1000));
  EXPECT_EQ(body, json::parse(R"({"next_after": "4711", "messages": [
    {"id": "0123456789abcdef", "account": "alice@example.com", "sender": "app@example.com",
     "size": 1234, "age_seconds": 90, "attempts": 2, "next_attempt_in_seconds": 60,
     "last_error": "421 4.7.0 Try again later",
     "recipients": [
       {"address": "a@example.org", "state": "delivered", "last_reply": "250 2.0.0 OK"},
       {"address": "b@example.org", "state": "pending", "last_reply": ""},
       {"address": "c@example.org", "state": "failed", "last_reply": "550 5.1.1 no such user"}]},
    {"id": "fedcba9876543210", "account": "alice@example.com", "sender": "app@example.com",
     "size": 1234, "age_seconds": 90, "attempts": 2, "next_attempt_in_seconds": 0,
     "last_error": "",
     "recipients": [
       {"address": "a@example.org", "state": "delivered", "last_reply": "250 2.0.0 OK"},
       {"address": "b@example.org", "state": "pending", "last_reply": ""},
       {"address": "c@example.org", "state": "failed", "last_reply": "550 5.1.1 no such user"}]}
  ]})"));
}

TEST(queue_json, the_last_page_has_no_next) {
  EXPECT_EQ(json::parse(queue_json({}, now * 1000)),
            json::parse(R"({"messages": [], "next_after": null})"));
}

TEST(queue_page, reads_limit_and_after_and_refuses_anything_else) {
  std::string error;
  auto page = parse_queue_page("", error);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->limit, default_queue_page);
  EXPECT_EQ(page->after, 0);
  page = parse_queue_page("limit=1000&after=9223372036854775807", error);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->limit, 1000u);
  EXPECT_EQ(page->after, 9223372036854775807);
  page = parse_queue_page("after=12&&limit=7&", error);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->limit, 7u);
  EXPECT_EQ(page->after, 12);

  const std::vector<std::pair<std::string, std::string>> refused = {
      {"limit=0", "limit must be a number from 1 to 1000"},
      {"limit=1001", "limit must be a number from 1 to 1000"},
      {"limit=", "limit must be a number from 1 to 1000"},
      {"limit=+5", "limit must be a number from 1 to 1000"},
      {"limit=5x", "limit must be a number from 1 to 1000"},
      {"after=-1", "after must be the next_after of the previous page"},
      {"after=9223372036854775808", "after must be the next_after of the previous page"},
      {"after", "after must be the next_after of the previous page"},
      {"all=1", "unknown parameter \"all\": expected limit=N and after=CURSOR"},
  };
  for (const auto& [query, why] : refused) {
    error.clear();
    EXPECT_FALSE(parse_queue_page(query, error)) << query;
    EXPECT_EQ(error, why) << query;
  }
}

TEST(queue_selection, accepts_ids_or_all_and_refuses_anything_else) {
  std::string error;
  auto ids = parse_queue_selection(R"({"ids":["a","b","a"]})", true, error);
  ASSERT_TRUE(ids);
  EXPECT_FALSE(ids->all);
  EXPECT_EQ(ids->ids, (std::vector<std::string>{"a", "b"}));
  auto all = parse_queue_selection(R"({"all":true})", true, error);
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->all);
  auto none = parse_queue_selection(R"({"ids":[]})", false, error);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->ids.empty());

  struct bad_case {
    const char* body;
    bool allow_all;
    const char* error;
  };
  for (const auto& c : std::vector<bad_case>{
           {"", true,
            "the body is not a JSON object: expected {\"ids\":[\"ID\",...]} or "
            "{\"all\":true}"},
           {"[1]", false, "the body is not a JSON object: expected {\"ids\":[\"ID\",...]}"},
           {R"({"all":true})", false, "unknown key \"all\": expected {\"ids\":[\"ID\",...]}"},
           {R"({"all":false})", true, "\"all\" must be true"},
           {R"({"ids":"a"})", true, "\"ids\" must be a list of message ids"},
           {R"({"ids":[1]})", true, "\"ids\" must be a list of message ids"},
           {R"({"ids":[""]})", true, "\"ids\" must be a list of message ids"},
           {R"({"ids":["a"],"all":true})", true,
            "expected {\"ids\":[\"ID\",...]} or {\"all\":true}"},
           {R"({})", false, "expected {\"ids\":[\"ID\",...]}"},
           {R"({"idz":["a"]})", false, "unknown key \"idz\": expected {\"ids\":[\"ID\",...]}"},
       }) {
    error.clear();
    EXPECT_FALSE(parse_queue_selection(c.body, c.allow_all, error)) << c.body;
    EXPECT_EQ(error, c.error) << c.body;
  }
}

TEST(queue_selection, answers_are_json) {
  relay::queue_change change{2, {"x", "y"}};
  EXPECT_EQ(change_json(change, "deleted"), "{\"deleted\":2,\"unknown\":[\"x\",\"y\"]}\n");
  EXPECT_EQ(error_json("not found"), "{\"error\":\"not found\"}\n");
}

TEST(prometheus, label_values_and_help_are_escaped) {
  EXPECT_EQ(escape_label_value("plain@example.com"), "plain@example.com");
  EXPECT_EQ(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
}

TEST(prometheus, values_are_exact_and_special_values_spelled_as_prometheus_reads_them) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e21), "1e+21");
  EXPECT_EQ(format_value(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(format_value(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(format_value(std::nan("")), "NaN");
}

TEST(prometheus, histogram_buckets_are_cumulative_with_inclusive_bounds) {
  histogram h({1, 0.5});
  h.observe(0.5);  // le is inclusive
  h.observe(0.75);
  h.observe(7);
  metrics_text out;
  out.family("x_seconds", "histogram", "test");
  h.render(out, "x_seconds");
  EXPECT_EQ(out.text(),
            "# HELP x_seconds test\n# TYPE x_seconds histogram\n"
            "x_seconds_bucket{le=\"0.5\"} 1\n"
            "x_seconds_bucket{le=\"1\"} 2\n"
            "x_seconds_bucket{le=\"+Inf\"} 3\n"
            "x_seconds_sum 8.25\n"
            "x_seconds_count 3\n");
}

TEST(prometheus, the_exposition_passes_the_strict_parser_with_every_contract_metric) {
  metrics_input in;
  in.health = healthy_input();
  in.health.accounts.push_back(account("we\"ird\\name\n@example.com", auth::token_state::missing));
  in.health.accounts[0].delivered = 5;
  in.health.accounts[0].status.refreshes_ok = 2;
  in.health.accounts[0].status.refreshes_failed = 1;
  in.health.accounts[0].sending_state = "over_quota";
  in.health.accounts[0].sent_24h = 480;
  in.health.accounts[1].upstream_down_since = now - 10;
  in.health.queue = {4, 1, now - 30};
  in.received = 7;
  in.bounced = 1;
  in.attempts_delivered = 5;
  in.attempts_deferred = 3;
  in.attempts_failed = 1;
  in.smtp_sessions = 2;
  in.upstream_connections = 1;
  histogram durations(delivery_duration_buckets());
  durations.observe(0.2);
  durations.observe(3);
  const auto text = render_metrics(in, durations, "0.1.0");
  const auto m = parse_prometheus(text);
  for (const char* name :
       {"oauth_relay_messages_received_total", "oauth_relay_messages_delivered_total",
        "oauth_relay_messages_bounced_total", "oauth_relay_delivery_attempts_total",
        "oauth_relay_queue_messages", "oauth_relay_queue_oldest_age_seconds",
        "oauth_relay_token_refreshes_total", "oauth_relay_account_token_valid",
        "oauth_relay_smtp_sessions_active", "oauth_relay_upstream_connections_active",
        "oauth_relay_delivery_duration_seconds", "oauth_relay_account_sending_state",
        "oauth_relay_account_sent_24h", "oauth_relay_upstream_up"}) {
    EXPECT_NE(m.family(name), nullptr) << name;
  }
  EXPECT_EQ(m.family("oauth_relay_delivery_duration_seconds")->type, "histogram");
  EXPECT_EQ(m.family("oauth_relay_messages_received_total")->type, "counter");
  EXPECT_EQ(m.family("oauth_relay_queue_messages")->type, "gauge");
  EXPECT_EQ(m.value("oauth_relay_messages_received_total"), 7);
  EXPECT_EQ(m.value("oauth_relay_messages_delivered_total", {{"account", "alice@example.com"}}), 5);
  EXPECT_EQ(m.value("oauth_relay_messages_delivered_total", {{"account", "ops@example.com"}}), 0);
  EXPECT_EQ(m.value("oauth_relay_delivery_attempts_total", {{"result", "deferred"}}), 3);
  EXPECT_EQ(m.value("oauth_relay_queue_messages"), 4);
  EXPECT_EQ(m.value("oauth_relay_queue_oldest_age_seconds"), 30);
  EXPECT_EQ(m.value("oauth_relay_token_refreshes_total",
                    {{"account", "alice@example.com"}, {"result", "error"}}),
            1);
  EXPECT_EQ(m.value("oauth_relay_account_token_valid", {{"account", "ops@example.com"}}), 1);
  // The odd address survives escaping and reads back unchanged.
  EXPECT_EQ(
      m.value("oauth_relay_account_token_valid", {{"account", "we\"ird\\name\n@example.com"}}), 0);
  EXPECT_EQ(m.value("oauth_relay_account_sending_state",
                    {{"account", "alice@example.com"}, {"state", "over_quota"}}),
            1);
  EXPECT_EQ(m.value("oauth_relay_account_sending_state",
                    {{"account", "alice@example.com"}, {"state", "ok"}}),
            0);
  EXPECT_EQ(m.value("oauth_relay_account_sending_state",
                    {{"account", "ops@example.com"}, {"state", "ok"}}),
            1);
  EXPECT_EQ(m.value("oauth_relay_account_sent_24h", {{"account", "alice@example.com"}}), 480);
  EXPECT_EQ(m.value("oauth_relay_upstream_up", {{"account", "alice@example.com"}}), 1);
  EXPECT_EQ(m.value("oauth_relay_upstream_up", {{"account", "ops@example.com"}}), 0);
  EXPECT_EQ(m.value("oauth_relay_delivery_duration_seconds_bucket", {{"le", "0.25"}}), 1);
  EXPECT_EQ(m.value("oauth_relay_delivery_duration_seconds_bucket", {{"le", "+Inf"}}), 2);
  EXPECT_EQ(m.value("oauth_relay_delivery_duration_seconds_sum"), 3.2);
  EXPECT_NE(
      text.find(
          "oauth_relay_account_token_valid{account=\"we\\\"ird\\\\name\\n@example.com\"} 0\n"),
      std::string::npos)
      << text;
}

TEST(prometheus, the_strict_parser_refuses_what_a_scraper_could_misread) {
  const std::string head = "# HELP a_total x\n# TYPE a_total counter\n";
  for (const std::string& bad : std::vector<std::string>{
           std::string("a_total 1\n"),                                            // no HELP/TYPE
           std::string("# TYPE a_total counter\n# HELP a_total x\na_total 1\n"),  // TYPE first
           head + "a_total{x=\"1\",} 1\n",                                        // trailing comma
           head + "a_total{x=\"\\t\"} 1\n",                                       // bad escape
           head + "a_total{x=\"1\",x=\"2\"} 1\n",                                 // duplicate label
           head + "a_total 1\na_total 2\n",  // duplicate sample
           head + "a_total one\n",           // value
           head + "a_total -1\n",            // negative counter
           head + "b_total 1\n",             // wrong family
           head + "a_total 1",               // no final LF
           head + "\na_total 1\n",           // blank line
           head + "# just a comment\n",      // stray comment
           std::string("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                       "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n"),  // decreasing
           std::string("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                       "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),  // +Inf != count
           std::string("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
                       "h_sum 1\nh_count 1\n"),  // no +Inf
       }) {
    EXPECT_THROW(parse_prometheus(bad), std::runtime_error) << bad;
  }
  EXPECT_NO_THROW(parse_prometheus(head + "a_total{x=\"a\\\"b\"} 1\n"));
}

}  // namespace
}  // namespace oauth_relay::daemon
