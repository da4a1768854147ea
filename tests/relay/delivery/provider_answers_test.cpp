// Gmail's quota and rate answers: the table matches Gmail's own replies (and
// nothing that only shares a code with them), and decide() never fails a
// recipient over one: the message waits for the account's hold.
#include "relay/delivery/provider_answers.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "relay/delivery/decision.hpp"
#include "relay/delivery/upstream_reply.hpp"

namespace oauth_relay::relay {
namespace {

smtp::reply parsed(const std::string& wire) {
  auto r = smtp::parse_reply(wire);
  return std::get<smtp::reply>(r);
}

struct answer_case {
  std::string name;
  std::string wire;  // the reply as Gmail sends it
  std::optional<sending_state> expected;
};

void PrintTo(const answer_case& c, std::ostream* os) {
  *os << c.name;
}

const std::vector<answer_case> answer_cases = {
    {"daily_user_sending_limit",
     "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n"
     "550-5.4.5 sending limits go to\r\n"
     "550 5.4.5  https://support.google.com/a/answer/166852 d2-20 - gsmtp\r\n",
     sending_state::over_quota},
    {"daily_sending_quota", "550 5.4.5 Daily sending quota exceeded. x - gsmtp\r\n",
     sending_state::over_quota},
    {"daily_smtp_relay_limit", "550 5.4.5 Daily SMTP relay limit exceeded for user. x - gsmtp\r\n",
     sending_state::over_quota},
    {"try_again_later", "421 4.7.0 Try again later, closing connection. (EHLO) x - gsmtp\r\n",
     sending_state::throttled},
    {"too_many_login_attempts",
     "454 4.7.0 Too many login attempts, please try again later. x - gsmtp\r\n",
     sending_state::throttled},
    {"too_many_recipients", "452 4.5.3 Your message has too many recipients. x - gsmtp\r\n",
     sending_state::throttled},
    // Same codes, other meanings: what SMTP says they mean.
    {"5_4_5_without_gmails_words", "550 5.4.5 routing loop detected\r\n", std::nullopt},
    {"421_without_4_7_0", "421 4.3.0 Temporary System Problem. Try again later\r\n", std::nullopt},
    {"4_7_0_tls_required", "454 4.7.0 TLS not available due to local problem\r\n", std::nullopt},
    {"no_such_user", "550 5.1.1 The email account that you tried to reach does not exist\r\n",
     std::nullopt},
    {"word_case_does_not_matter", "421 4.7.0 TRY AGAIN LATER\r\n", sending_state::throttled},
};

class answer_table : public testing::TestWithParam<answer_case> {};

TEST_P(answer_table, classifies_as_specified) {
  const auto& c = GetParam();
  const auto* a = classify(parsed(c.wire));
  if (!c.expected) {
    EXPECT_EQ(a, nullptr);
    return;
  }
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->state, *c.expected);
}

INSTANTIATE_TEST_SUITE_P(cases, answer_table, testing::ValuesIn(answer_cases),
                         [](const auto& info) { return info.param.name; });

TEST(provider_answers, every_entry_names_its_source_and_matches_its_own_words) {
  ASSERT_EQ(provider_answers().size(), 4u);
  for (const auto& a : provider_answers()) {
    EXPECT_TRUE(a.source.starts_with("https://support.google.com/")) << a.source;
    EXPECT_FALSE(a.meaning.empty());
    const auto r = smtp::make_reply(a.code, a.enhanced, "x " + std::string(a.text) + " y");
    EXPECT_EQ(classify(r), &a);
  }
}

// --- decide() with the answers ------------------------------------------------

constexpr std::int64_t now = 1'800'000'000'000;

delivery_policy policy() {
  delivery_policy p;
  p.retry_initial = std::chrono::seconds(60);
  p.retry_max = std::chrono::hours(1);
  p.lifetime = std::chrono::hours(120);
  p.reporting_host = "relay.test";
  p.upstream_host = "smtp.gmail.com";
  return p;
}

queued_message message(std::vector<std::string> to) {
  queued_message m;
  m.id = "0123456789abcdef";
  m.received_at = now / 1000 - 600;
  m.env.sender = "app@example.com";
  m.env.account = "alice@example.com";
  for (auto& address : to) {
    queued_recipient r;
    r.rcpt.address = std::move(address);
    m.env.recipients.push_back(r.rcpt);
    m.recipients.push_back(std::move(r));
  }
  return m;
}

const smtp::reply over_quota{550, "5.4.5", {"Daily user sending limit exceeded."}};
const smtp::reply too_many{452, "4.5.3", {"Your message has too many recipients."}};
const smtp::reply try_later{421, "4.7.0", {"Try again later, closing connection."}};

attempt mail_refused(const smtp::reply& r, std::size_t recipients) {
  send_result result;
  for (std::size_t i = 0; i < recipients; ++i) {
    result.recipients.push_back(
        {"r" + std::to_string(i) + "@example.org",
         r.permanent() ? delivery_status::failed : delivery_status::deferred, r, true});
  }
  result.mail_reply = r;
  result.message = "MAIL refused: " + smtp::to_line(r);
  return sent_upstream{std::move(result)};
}

struct held_case {
  std::string name;
  attempt what;
  std::optional<std::int64_t> held_until;
  sending_state held;
  std::int64_t next_attempt_ms;
  std::vector<recipient_status> recipients;
  std::size_t sent_recipients;
};

void PrintTo(const held_case& c, std::ostream* os) {
  *os << c.name;
}

const std::int64_t resume = now + 5 * 3600 * 1000;

const std::vector<held_case> held_cases = {
    // The cron storm at 23:00: a 5xx that would have bounced every recipient.
    {"daily_limit_at_mail_keeps_every_recipient_pending",
     mail_refused(over_quota, 2),
     resume,
     sending_state::over_quota,
     resume,
     {recipient_status::pending, recipient_status::pending},
     0},
    {"daily_limit_without_a_hold_time_waits_its_backoff",
     mail_refused(over_quota, 1),
     std::nullopt,
     sending_state::over_quota,
     now + 60'000,
     {recipient_status::pending},
     0},
    {"too_many_recipients_at_rcpt_keeps_the_rest_for_later",
     [] {
       send_result r;
       r.recipients.push_back({"a@example.org", delivery_status::delivered,
                               smtp::make_reply(250, "2.0.0", "OK"), true});
       r.recipients.push_back({"b@example.org", delivery_status::deferred, too_many, true});
       return attempt{sent_upstream{std::move(r)}};
     }(),
     now + 120'000,
     sending_state::throttled,
     now + 120'000,
     {recipient_status::delivered, recipient_status::pending},
     1},
    {"try_again_later_at_the_greeting_holds_the_account",
     not_sent{"upstream smtp.gmail.com: upstream greeted with 421 4.7.0 Try again later",
              std::chrono::milliseconds(60'000), try_later},
     now + 60'000,
     sending_state::throttled,
     now + 60'000,
     {recipient_status::pending, recipient_status::pending},
     0},
    {"an_ordinary_refusal_is_not_a_hold",
     not_sent{"upstream smtp.gmail.com: connection refused", std::chrono::milliseconds(60'000),
              std::nullopt},
     std::nullopt,
     sending_state::ok,
     now + 60'000,
     {recipient_status::pending, recipient_status::pending},
     0},
};

class held_table : public testing::TestWithParam<held_case> {};

TEST_P(held_table, decides_as_specified) {
  const auto& c = GetParam();
  const auto m = message(c.recipients.size() == 1
                             ? std::vector<std::string>{"r0@example.org"}
                             : std::vector<std::string>{"r0@example.org", "r1@example.org"});
  const auto d = decide(m, c.what, policy(), now, std::nullopt, c.held_until);
  EXPECT_FALSE(d.record.finished);
  EXPECT_FALSE(d.bounce.has_value());
  EXPECT_EQ(d.report.held, c.held);
  EXPECT_EQ(d.record.next_attempt_ms, c.next_attempt_ms);
  EXPECT_EQ(d.report.outcome, message_outcome::deferred);
  EXPECT_EQ(d.report.failed, 0u);
  EXPECT_FALSE(d.report.counts_failed);
  // A pause Gmail asked for is not a fault of the account.
  EXPECT_EQ(d.report.account_failure, false);
  std::vector<recipient_status> now_status(m.recipients.size(), recipient_status::pending);
  for (const auto& u : d.record.recipients) now_status[u.position] = u.status;
  EXPECT_EQ(now_status, c.recipients);
  EXPECT_EQ(d.record.sent_recipients, c.sent_recipients);
  if (c.sent_recipients > 0) {
    EXPECT_EQ(d.record.account, "alice@example.com");
    EXPECT_EQ(d.record.sent_at_ms, now);
  }
}

INSTANTIATE_TEST_SUITE_P(cases, held_table, testing::ValuesIn(held_cases),
                         [](const auto& info) { return info.param.name; });

TEST(provider_answers, a_hold_never_outlasts_the_message_lifetime) {
  auto m = message({"a@example.org"});
  m.received_at = now / 1000 - 119 * 3600;  // an hour left of 120
  const auto d =
      decide(m, mail_refused(over_quota, 1), policy(), now, std::nullopt, now + 10 * 3600 * 1000);
  EXPECT_EQ(d.record.next_attempt_ms, (m.received_at + 120 * 3600) * 1000);
}

TEST(provider_answers, the_most_severe_answer_wins) {
  send_result r;
  r.recipients.push_back({"a@example.org", delivery_status::deferred, too_many, true});
  r.data_reply = over_quota;
  const auto found = provider_answer_in(sent_upstream{r});
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->answer->state, sending_state::over_quota);
  EXPECT_EQ(found->reply, "550 5.4.5 Daily user sending limit exceeded.");
}

TEST(provider_answers, a_reply_the_relay_made_itself_is_not_gmails) {
  send_result r;
  r.recipients.push_back({"a@example.org", delivery_status::deferred, try_later, false});
  EXPECT_FALSE(provider_answer_in(sent_upstream{r}).has_value());
}

}  // namespace
}  // namespace oauth_relay::relay
