// The delivery decision as a table: a queued message and what happened on one
// attempt in, the exact record, bounce and report out.
#include "relay/delivery/decision.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "common/text.hpp"

namespace oauth_relay::relay {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

constexpr std::int64_t now = 1'800'000'000'000;  // unix ms
constexpr std::int64_t hour = 3600;
constexpr std::int64_t lifetime_seconds = 120 * hour;
const std::string original = "Subject: hello\r\nMessage-ID: <m@example.com>\r\n\r\nbody\r\n";

delivery_policy policy() {
  delivery_policy p;
  p.retry_initial = 60s;
  p.retry_max = 1h;
  p.lifetime = std::chrono::seconds(lifetime_seconds);
  p.reporting_host = "relay.test";
  p.upstream_host = "smtp.gmail.com";
  return p;
}

// --- building messages and results ----------------------------------------

queued_recipient rcpt(std::string address, recipient_status status = recipient_status::pending,
                      std::string last_reply = "") {
  queued_recipient r;
  r.rcpt.address = std::move(address);
  r.status = status;
  r.last_reply = std::move(last_reply);
  return r;
}

queued_message message(std::vector<queued_recipient> recipients, int attempts = 0,
                       std::int64_t age_seconds = 600, std::string last_error = "",
                       std::string sender = "app@example.com") {
  queued_message m;
  m.id = "0123456789abcdef";
  m.received_at = now / 1000 - age_seconds;
  m.env.sender = std::move(sender);
  m.env.account = "alice@example.com";
  m.attempts = attempts;
  m.last_error = std::move(last_error);
  m.recipients = std::move(recipients);
  for (const auto& r : m.recipients) m.env.recipients.push_back(r.rcpt);
  return m;
}

recipient_result result(std::string address, delivery_status status, smtp::reply reply,
                        bool from_upstream = true) {
  return recipient_result{std::move(address), status, std::move(reply), from_upstream};
}
recipient_result ok(std::string address) {
  return result(std::move(address), delivery_status::delivered,
                smtp::make_reply(250, "2.0.0", "OK"));
}

attempt sent(std::vector<recipient_result> recipients, std::string message = "") {
  send_result r;
  r.recipients = std::move(recipients);
  r.message = std::move(message);
  return sent_upstream{std::move(r)};
}

const smtp::reply no_such_user{550, "5.1.1", {"no such user", "see the help page"}};
const smtp::reply try_later = smtp::make_reply(451, "4.3.0", "try later");

// --- expectations -----------------------------------------------------------

// One recipient as the bounce reports it.
struct notice {
  std::string address;
  std::string status;
  std::string diagnostic;
  bool from_upstream = true;
};

struct report_shape {
  message_outcome outcome = message_outcome::deferred;
  std::size_t delivered_now = 0;
  std::size_t failed = 0;
  bool counts_delivered = false;
  bool counts_deferred = false;
  bool counts_failed = false;
  bool account_failure = false;
};

struct decision_case {
  std::string name;
  queued_message message;
  attempt what;
  std::vector<recipient_update> updates;
  bool finished = false;
  std::optional<ms> wait;  // next_attempt_ms - now, when not finished
  std::string last_error;
  std::optional<std::vector<notice>> bounce;  // unset: no bounce
  report_shape report;
  std::string reason;  // report.reason
  bool with_content = true;
};

// gtest prints a failing row by its name, not as bytes.
void PrintTo(const decision_case& c, std::ostream* os) {
  *os << c.name;
}

using S = recipient_status;
using O = message_outcome;

const std::vector<decision_case> cases = {
    {"all_delivered",
     message({rcpt("a@example.org"), rcpt("b@example.org")}),
     sent({ok("a@example.org"), ok("b@example.org")}),
     {{0, S::delivered, "250 2.0.0 OK"}, {1, S::delivered, "250 2.0.0 OK"}},
     true,
     std::nullopt,
     "",
     std::nullopt,
     {O::delivered, 2, 0, true, false, false, false},
     ""},
    {"one_failed_bounces_with_its_enhanced_status",
     message({rcpt("a@example.org"), rcpt("b@example.org")}),
     sent({ok("a@example.org"), result("b@example.org", delivery_status::failed, no_such_user)}),
     {{0, S::delivered, "250 2.0.0 OK"},
      {1, S::failed, "550 5.1.1 no such user / see the help page"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{
         {"b@example.org", "5.1.1", "550 5.1.1 no such user / see the help page", true}},
     {O::failed, 1, 1, true, false, true, false},
     ""},
    {"failure_without_enhanced_code_is_5_0_0",
     message({rcpt("a@example.org")}),
     sent({result("a@example.org", delivery_status::failed, smtp::make_reply(554, "", "no"))},
          "content refused: 554 no"),
     {{0, S::failed, "554 no"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{{"a@example.org", "5.0.0", "554 no", true}},
     {O::failed, 0, 1, false, false, true, false},
     "content refused: 554 no"},
    {"relay_made_failure_is_not_attributed_to_the_upstream",
     message({rcpt("a@example.org")}),
     sent({result("a@example.org", delivery_status::failed,
                  smtp::make_reply(553, "5.6.7", "needs SMTPUTF8"), false)}),
     {{0, S::failed, "553 5.6.7 needs SMTPUTF8"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{{"a@example.org", "5.6.7", "553 5.6.7 needs SMTPUTF8", false}},
     {O::failed, 0, 1, false, false, true, false},
     ""},
    {"some_deferred_first_failure_waits_retry_initial",
     message({rcpt("a@example.org"), rcpt("b@example.org")}),
     sent({ok("a@example.org"), result("b@example.org", delivery_status::deferred, try_later)}),
     {{0, S::delivered, "250 2.0.0 OK"}, {1, S::pending, "451 4.3.0 try later"}},
     false,
     60s,
     "451 4.3.0 try later",
     std::nullopt,
     {O::deferred, 1, 0, true, true, false, false},
     ""},
    {"third_attempt_waits_four_times_as_long",
     message({rcpt("a@example.org")}, 2),
     sent({result("a@example.org", delivery_status::deferred, try_later)}, "DATA refused"),
     {{0, S::pending, "451 4.3.0 try later"}},
     false,
     240s,
     "451 4.3.0 try later",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, true},
     "DATA refused"},
    {"backoff_is_capped_at_retry_max",
     message({rcpt("a@example.org")}, 10),
     sent({result("a@example.org", delivery_status::deferred, try_later)}),
     {{0, S::pending, "451 4.3.0 try later"}},
     false,
     1h,
     "451 4.3.0 try later",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, true},
     ""},
    {"last_error_is_the_last_pending_recipients_reply",
     message({rcpt("a@example.org"), rcpt("b@example.org")}),
     sent({result("a@example.org", delivery_status::deferred, try_later),
           result("b@example.org", delivery_status::deferred,
                  smtp::make_reply(452, "4.2.2", "mailbox full"))},
          "some summary"),
     {{0, S::pending, "451 4.3.0 try later"}, {1, S::pending, "452 4.2.2 mailbox full"}},
     false,
     60s,
     "452 4.2.2 mailbox full",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, true},
     "some summary"},
    {"last_error_is_a_stored_reply_of_a_recipient_not_answered",
     message({rcpt("a@example.org", S::pending, "421 4.7.0 earlier")}),
     sent({}, "connection not usable"),
     {},
     false,
     60s,
     "421 4.7.0 earlier",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, true},
     "connection not usable"},
    {"last_error_is_the_send_message_without_any_reply",
     message({rcpt("a@example.org")}),
     sent({}, "connection not usable"),
     {},
     false,
     60s,
     "connection not usable",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, true},
     "connection not usable"},
    {"last_error_is_a_summary_without_message_or_reply",
     message({rcpt("a@example.org")}),
     sent({}),
     {},
     false,
     60s,
     "some recipients deferred",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, true},
     ""},
    {"not_sent_waits_the_given_delay",
     message({rcpt("a@example.org")}, 3),
     not_sent{"upstream smtp.gmail.com: connection refused", 120s, std::nullopt},
     {},
     false,
     120s,
     "upstream smtp.gmail.com: connection refused",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, false},
     "upstream smtp.gmail.com: connection refused"},
    {"account_waiting_for_consent_waits_retry_max",
     message({rcpt("a@example.org")}),
     not_sent{"account alice@example.com needs to be authorized again", 1h, std::nullopt},
     {},
     false,
     1h,
     "account alice@example.com needs to be authorized again",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, false},
     "account alice@example.com needs to be authorized again"},
    {"not_sent_without_a_delay_backs_off_by_attempts",
     message({rcpt("a@example.org")}, 1),
     not_sent{"cannot read the message content: disk I/O error", std::nullopt, std::nullopt},
     {},
     false,
     120s,
     "cannot read the message content: disk I/O error",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, false},
     "cannot read the message content: disk I/O error",
     false},
    {"expired_before_the_attempt_fails_what_is_pending_with_4_4_7",
     message({rcpt("a@example.org", S::delivered, "250 2.0.0 OK"), rcpt("b@example.org")}, 7,
             lifetime_seconds + hour, "451 4.3.0 try later"),
     too_old{},
     {{1, S::failed, "4.4.7 message expired after 121 hours in the queue: 451 4.3.0 try later"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{{"b@example.org", "4.4.7",
                          "4.4.7 message expired after 121 hours in the queue: 451 4.3.0 try later",
                          false}},
     {O::failed, 0, 1, false, false, false, false},
     "message expired after 121 hours in the queue: 451 4.3.0 try later"},
    {"expired_after_the_attempt_keeps_the_deferral_then_fails_it",
     message({rcpt("a@example.org"), rcpt("b@example.org")}, 7, lifetime_seconds),
     sent({ok("a@example.org"), result("b@example.org", delivery_status::deferred, try_later)},
          "RCPT deferred"),
     {{0, S::delivered, "250 2.0.0 OK"},
      {1, S::pending, "451 4.3.0 try later"},
      {1, S::failed, "4.4.7 RCPT deferred"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{{"b@example.org", "4.4.7", "4.4.7 RCPT deferred", false}},
     {O::failed, 1, 1, true, false, true, false},
     "RCPT deferred"},
    // ... and comes up again when it expires, not after its full wait.
    {"one_second_before_the_lifetime_it_is_only_deferred",
     message({rcpt("a@example.org")}, 7, lifetime_seconds - 1),
     not_sent{"upstream smtp.gmail.com: timed out", 60s, std::nullopt},
     {},
     false,
     1s,
     "upstream smtp.gmail.com: timed out",
     std::nullopt,
     {O::deferred, 0, 0, false, true, false, false},
     "upstream smtp.gmail.com: timed out"},
    {"not_sent_after_the_lifetime_bounces_without_the_content",
     message({rcpt("a@example.org")}, 7, lifetime_seconds),
     not_sent{"upstream smtp.gmail.com: timed out", 60s, std::nullopt},
     {{0, S::failed, "4.4.7 upstream smtp.gmail.com: timed out"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{
         {"a@example.org", "4.4.7", "4.4.7 upstream smtp.gmail.com: timed out", false}},
     {O::failed, 0, 1, false, false, false, false},
     "upstream smtp.gmail.com: timed out",
     false},
    {"a_bounce_that_fails_is_never_bounced",
     message({rcpt("app@example.com")}, 0, 600, "", ""),
     sent({result("app@example.com", delivery_status::failed, no_such_user)}),
     {{0, S::failed, "550 5.1.1 no such user / see the help page"}},
     true,
     std::nullopt,
     "",
     std::nullopt,
     {O::failed, 0, 1, false, false, true, false},
     ""},
    {"an_earlier_failure_is_reported_when_the_message_finishes",
     message({rcpt("a@example.org", S::failed, "550 5.1.1 gone"), rcpt("b@example.org")}, 1),
     sent({ok("b@example.org")}),
     {{1, S::delivered, "250 2.0.0 OK"}},
     true,
     std::nullopt,
     "",
     std::vector<notice>{{"a@example.org", "5.1.1", "550 5.1.1 gone", true}},
     {O::failed, 1, 1, true, false, true, false},
     ""},
    {"an_earlier_failure_waits_while_others_are_deferred",
     message({rcpt("a@example.org", S::failed, "550 5.1.1 gone"), rcpt("b@example.org")}, 1),
     sent({result("b@example.org", delivery_status::deferred, try_later)}),
     {{1, S::pending, "451 4.3.0 try later"}},
     false,
     120s,
     "451 4.3.0 try later",
     std::nullopt,
     {O::deferred, 0, 1, false, true, false, true},
     ""},
};

std::string describe(const std::vector<recipient_update>& updates) {
  std::string out;
  for (const auto& u : updates) {
    out += "{" + std::to_string(u.position) + ", " + std::to_string(static_cast<int>(u.status)) +
           ", \"" + u.reply + "\"} ";
  }
  return out;
}

std::size_t occurrences(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class decision_table : public testing::TestWithParam<decision_case> {};

TEST_P(decision_table, decides_as_specified) {
  const auto& c = GetParam();
  std::optional<std::string_view> content;
  if (c.with_content) content = original;
  const auto d = decide(c.message, c.what, policy(), now, content);

  EXPECT_EQ(d.record.id, c.message.id);
  EXPECT_EQ(describe(d.record.recipients), describe(c.updates));
  EXPECT_EQ(d.record.finished, c.finished);
  EXPECT_EQ(d.record.next_attempt_ms, c.wait ? now + c.wait->count() : 0);
  EXPECT_EQ(d.record.last_error, c.last_error);
  EXPECT_TRUE(d.record.count_attempt);

  EXPECT_EQ(d.report.outcome, c.report.outcome);
  EXPECT_EQ(d.report.delivered_now, c.report.delivered_now);
  EXPECT_EQ(d.report.failed, c.report.failed);
  EXPECT_EQ(d.report.counts_delivered, c.report.counts_delivered);
  EXPECT_EQ(d.report.counts_deferred, c.report.counts_deferred);
  EXPECT_EQ(d.report.counts_failed, c.report.counts_failed);
  EXPECT_EQ(d.report.account_failure, c.report.account_failure);
  EXPECT_EQ(d.report.attempt_number, c.message.attempts + 1);
  EXPECT_EQ(d.report.reason, c.reason);

  ASSERT_EQ(d.bounce.has_value(), c.bounce.has_value());
  if (!c.bounce) return;
  const auto& b = *d.bounce;
  EXPECT_EQ(b.env.sender, "");
  EXPECT_EQ(b.env.account, "alice@example.com");
  ASSERT_EQ(b.env.recipients.size(), 1u);
  EXPECT_EQ(b.env.recipients[0].address, "app@example.com");
  EXPECT_EQ(occurrences(b.content, "Final-Recipient:"), c.bounce->size()) << b.content;
  for (const auto& n : *c.bounce) {
    const std::string where = n.from_upstream
                                  ? "Remote-MTA: dns; smtp.gmail.com\r\nDiagnostic-Code: smtp; "
                                  : "Diagnostic-Code: X-Oauth-Relay; ";
    EXPECT_NE(b.content.find("Final-Recipient: rfc822; " + n.address +
                             "\r\nAction: failed\r\nStatus: " + n.status + "\r\n" + where +
                             n.diagnostic + "\r\n"),
              std::string::npos)
        << b.content;
  }
  EXPECT_EQ(b.content.find("Content-Type: message/rfc822\r\n\r\n" + original) != std::string::npos,
            c.with_content)
      << b.content;
}

INSTANTIATE_TEST_SUITE_P(cases, decision_table, testing::ValuesIn(cases),
                         [](const auto& info) { return info.param.name; });

TEST(decision, a_recipient_that_wants_no_notice_gets_no_bounce) {
  auto m = message({rcpt("a@example.org")});
  m.recipients[0].rcpt.params.notify.specified = true;
  m.recipients[0].rcpt.params.notify.never = true;
  const auto d = decide(m, sent({result("a@example.org", delivery_status::failed, no_such_user)}),
                        policy(), now, original);
  EXPECT_TRUE(d.record.finished);
  EXPECT_EQ(d.report.outcome, message_outcome::failed);
  EXPECT_FALSE(d.bounce.has_value());
}

TEST(decision, the_bounce_is_dated_now_and_names_the_arrival) {
  const auto m = message({rcpt("a@example.org")}, 0, 7200);
  const auto d = decide(m, sent({result("a@example.org", delivery_status::failed, no_such_user)}),
                        policy(), now, original);
  ASSERT_TRUE(d.bounce.has_value());
  EXPECT_NE(d.bounce->content.find("\r\nDate: " + rfc5322_date(now / 1000) + "\r\n"),
            std::string::npos);
  EXPECT_NE(d.bounce->content.find("\r\nArrival-Date: " + rfc5322_date(now / 1000 - 7200) + "\r\n"),
            std::string::npos);
}

TEST(decision, past_lifetime_counts_whole_seconds_from_arrival) {
  EXPECT_FALSE(past_lifetime(message({}, 0, lifetime_seconds - 1), policy(), now));
  EXPECT_TRUE(past_lifetime(message({}, 0, lifetime_seconds), policy(), now));
  EXPECT_TRUE(past_lifetime(message({}, 0, lifetime_seconds + 1), policy(), now));
}

TEST(decision, a_lost_content_fails_every_pending_recipient_with_5_3_0_and_no_copy) {
  const auto m = message(
      {rcpt("a@example.org", recipient_status::delivered, "250 2.0.0 OK"), rcpt("b@example.org")});
  const auto d = decide(m, content_lost{"the message content is gone: no such file"}, policy(), now,
                        std::nullopt);
  EXPECT_TRUE(d.record.finished);
  ASSERT_EQ(d.record.recipients.size(), 1u);
  EXPECT_EQ(d.record.recipients[0].position, 1u);
  EXPECT_EQ(d.record.recipients[0].reply, "5.3.0 the message content is gone: no such file");
  EXPECT_EQ(d.report.outcome, message_outcome::failed);
  EXPECT_FALSE(d.report.counts_failed);  // the upstream never saw it
  ASSERT_TRUE(d.bounce.has_value());
  const auto& c = d.bounce->content;
  EXPECT_NE(c.find("Final-Recipient: rfc822; b@example.org\r\nAction: failed\r\nStatus: "
                   "5.3.0\r\nDiagnostic-Code: X-Oauth-Relay; 5.3.0 the message content is gone: "
                   "no such file\r\n"),
            std::string::npos)
      << c;
  EXPECT_EQ(c.find("a@example.org"), std::string::npos) << c;
}

TEST(decision, a_deferred_message_comes_up_again_no_later_than_its_expiry) {
  const auto m = message({rcpt("a@example.org")}, 9, lifetime_seconds - 60);
  const auto d =
      decide(m, not_sent{"no connection", std::nullopt, std::nullopt}, policy(), now, std::nullopt);
  EXPECT_FALSE(d.record.finished);
  EXPECT_EQ(d.record.next_attempt_ms, now + 60'000);  // not the hour of its backoff
}

TEST(decision, one_delay_warning_once_the_message_is_older_than_delay_warning) {
  auto p = policy();
  p.delay_warning = 4h;
  auto m = message({rcpt("a@example.org"), rcpt("b@example.org")}, 3, 4 * hour);
  m.recipients[1].rcpt.params.notify.specified = true;
  m.recipients[1].rcpt.params.notify.failure = true;  // FAILURE only: no DELAY notice
  m.env.recipients[1] = m.recipients[1].rcpt;
  const auto d = decide(m,
                        sent({result("a@example.org", delivery_status::deferred, try_later),
                              result("b@example.org", delivery_status::deferred, try_later)}),
                        p, now, original);
  EXPECT_FALSE(d.record.finished);
  EXPECT_TRUE(d.record.delay_warned);
  ASSERT_TRUE(d.bounce.has_value());
  const auto& b = *d.bounce;
  EXPECT_EQ(b.env.sender, "");
  EXPECT_EQ(b.env.recipients.at(0).address, "app@example.com");
  const auto& c = b.content;
  EXPECT_NE(c.find("Subject: Delayed Mail (still being retried)\r\n"), std::string::npos) << c;
  EXPECT_NE(c.find("Final-Recipient: rfc822; a@example.org\r\nAction: delayed\r\nStatus: "
                   "4.3.0\r\nRemote-MTA: dns; smtp.gmail.com\r\nDiagnostic-Code: smtp; 451 "
                   "4.3.0 try later\r\n"),
            std::string::npos)
      << c;
  EXPECT_NE(c.find("Will-Retry-Until: " + rfc5322_date(m.received_at + lifetime_seconds)),
            std::string::npos)
      << c;
  EXPECT_EQ(c.find("b@example.org"), std::string::npos) << c;
  // Only the header goes back with a warning.
  EXPECT_NE(c.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n"),
            std::string::npos);
  EXPECT_EQ(c.find("\r\nbody\r\n"), std::string::npos);

  // Already warned, or younger, or warnings off: nothing.
  m.delay_warned = true;
  auto again =
      decide(m, not_sent{"no connection", std::nullopt, std::nullopt}, p, now, std::nullopt);
  EXPECT_FALSE(again.bounce.has_value());
  EXPECT_FALSE(again.record.delay_warned);
  m.delay_warned = false;
  EXPECT_FALSE(decide(message({rcpt("a@example.org")}, 3, 4 * hour - 1),
                      not_sent{"no connection", std::nullopt, std::nullopt}, p, now, std::nullopt)
                   .bounce.has_value());
  EXPECT_FALSE(
      decide(m, not_sent{"no connection", std::nullopt, std::nullopt}, policy(), now, std::nullopt)
          .bounce.has_value());
  // A finished message gets its bounce, never a warning.
  const auto done = decide(m, sent({ok("a@example.org"), ok("b@example.org")}), p, now, original);
  EXPECT_FALSE(done.bounce.has_value());
  EXPECT_FALSE(done.record.delay_warned);
}

TEST(decision, backoff_doubles_per_failure_up_to_retry_max) {
  const auto p = policy();
  EXPECT_EQ(p.backoff(0), 60s);
  EXPECT_EQ(p.backoff(1), 60s);
  EXPECT_EQ(p.backoff(2), 120s);
  EXPECT_EQ(p.backoff(6), 1920s);
  EXPECT_EQ(p.backoff(7), 1h);
  EXPECT_EQ(p.backoff(1000), 1h);
}

}  // namespace
}  // namespace oauth_relay::relay
