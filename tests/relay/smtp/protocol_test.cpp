// The SMTP command set as a table: each row is a dialogue of command lines
// and the exact replies (code and enhanced code) the relay must give.
#include "relay/smtp/protocol.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace oauth_relay::relay {
namespace {

struct step {
  std::string line;  // "<too long>" stands for an overlong command line
  int code;
  std::string enhanced;
  smtp_protocol::next then = smtp_protocol::next::reply;
};

struct dialogue {
  std::string name;
  std::vector<step> steps;
};

std::vector<config::account_settings> accounts() {
  config::account_settings alice;
  alice.address = "alice@example.com";
  alice.senders = {"alice@example.com", "*@billing.example.com"};
  config::account_settings ops;
  ops.address = "ops@example.com";
  ops.senders = {"ops@example.com"};
  return {alice, ops};
}

protocol_settings settings() {
  protocol_settings s;
  s.hostname = "relay.test";
  s.max_message_size = 1000;
  s.max_recipients = 3;
  return s;
}

using N = smtp_protocol::next;

const std::vector<dialogue> dialogues = {
    {"mail_before_helo", {{"MAIL FROM:<alice@example.com>", 503, "5.5.1"}}},
    {"rcpt_before_mail", {{"EHLO c", 250, ""}, {"RCPT TO:<b@example.com>", 503, "5.5.1"}}},
    {"data_before_rcpt",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"DATA", 554, "5.5.1"}}},
    {"data_before_mail", {{"HELO c", 250, ""}, {"DATA", 503, "5.5.1"}}},
    {"full_transaction",
     {{"EHLO client.example", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"RCPT TO:<bob@example.org>", 250, "2.1.5"},
      {"DATA", 354, "", N::start_data}}},
    {"helo_is_enough",
     {{"HELO old.client", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"RCPT TO:<bob@example.org>", 250, "2.1.5"},
      {"DATA", 354, "", N::start_data}}},
    {"esmtp_parameters_need_ehlo",
     {{"HELO old.client", 250, ""}, {"MAIL FROM:<alice@example.com> SIZE=10", 555, "5.5.4"}}},
    {"second_mail_refused",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"MAIL FROM:<alice@example.com>", 503, "5.5.1"}}},
    {"rset_clears_transaction",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"RSET", 250, "2.0.0"},
      {"RCPT TO:<bob@example.org>", 503, "5.5.1"},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"}}},
    {"ehlo_resets_transaction",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"EHLO c", 250, ""},
      {"RCPT TO:<bob@example.org>", 503, "5.5.1"}}},
    {"unroutable_sender", {{"EHLO c", 250, ""}, {"MAIL FROM:<mallory@example.net>", 550, "5.7.1"}}},
    {"pattern_sender",
     {{"EHLO c", 250, ""}, {"MAIL FROM:<invoices@Billing.Example.com>", 250, "2.1.0"}}},
    {"size_over_limit",
     {{"EHLO c", 250, ""}, {"MAIL FROM:<alice@example.com> SIZE=1001", 552, "5.3.4"}}},
    {"size_at_limit",
     {{"EHLO c", 250, ""}, {"MAIL FROM:<alice@example.com> SIZE=1000", 250, "2.1.0"}}},
    {"too_many_recipients",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"RCPT TO:<a@example.org>", 250, "2.1.5"},
      {"RCPT TO:<b@example.org>", 250, "2.1.5"},
      {"RCPT TO:<c@example.org>", 250, "2.1.5"},
      {"RCPT TO:<d@example.org>", 452, "4.5.3"},
      {"DATA", 354, "", N::start_data}}},
    {"bad_recipient_keeps_transaction",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"RCPT TO:<not an address>", 501, "5.1.3"},
      {"RCPT TO:<b@example.org>", 250, "2.1.5"}}},
    {"misc_verbs",
     {{"NOOP", 250, "2.0.0"},
      {"VRFY bob", 252, "2.5.0"},
      {"EXPN list", 502, "5.5.1"},
      {"HELP", 214, "2.0.0"},
      {"STARTTLS", 502, "5.5.1"},
      {"AUTH PLAIN", 502, "5.5.1"},
      {"FOO", 500, "5.5.2"},
      {"QUIT", 221, "2.0.0", N::close}}},
    {"eight_bit_helo_refused",
     {{"EHLO b\xC3\xBC\x63her.example", 501, "5.5.4"},
      {"HELO b\xFF", 501, "5.5.4"},
      {"MAIL FROM:<alice@example.com>", 503, "5.5.1"},
      {"EHLO xn--bcher-kva.example", 250, ""}}},
    {"syntax_errors",
     {{"EHLO", 501, "5.5.4"},
      {"EHLO c", 250, ""},
      {"MAIL alice@example.com", 501, "5.5.4"},
      {"MAIL FROM:<alice@example.com>", 250, "2.1.0"},
      {"RCPT bob", 501, "5.5.4"},
      {"RSET now", 501, "5.5.4"},
      {"DATA now", 501, "5.5.4"}}},
    {"line_too_long", {{"<too long>", 500, "5.5.2"}, {"NOOP", 250, "2.0.0"}}},
    {"ten_errors_close",
     {{"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 500, "5.5.2"},
      {"FOO", 421, "4.7.0", N::close}}},
};

class protocol_table : public testing::TestWithParam<dialogue> {};

TEST_P(protocol_table, replies_as_specified) {
  sender_router router(accounts());
  smtp_protocol protocol(settings(), router);
  int index = 0;
  for (const auto& s : GetParam().steps) {
    auto outcome =
        s.line == "<too long>" ? protocol.on_line_too_long() : protocol.on_command(s.line);
    EXPECT_EQ(outcome.reply.code, s.code)
        << "step " << index << ": " << s.line << " -> " << outcome.reply.wire();
    EXPECT_EQ(outcome.reply.enhanced, s.enhanced) << "step " << index << ": " << s.line;
    EXPECT_EQ(outcome.then, s.then) << "step " << index << ": " << s.line;
    ++index;
  }
}

INSTANTIATE_TEST_SUITE_P(dialogues, protocol_table, testing::ValuesIn(dialogues),
                         [](const auto& info) { return info.param.name; });

TEST(smtp_protocol, ehlo_advertises_the_extensions) {
  sender_router router(accounts());
  smtp_protocol protocol(settings(), router);
  auto outcome = protocol.on_command("EHLO client.example");
  EXPECT_EQ(outcome.reply.wire(),
            "250-relay.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 HELP\r\n");
}

TEST(smtp_protocol, greeting_names_the_host) {
  sender_router router(accounts());
  smtp_protocol protocol(settings(), router);
  EXPECT_EQ(protocol.greeting().wire(), "220 relay.test ESMTP oauth-relay\r\n");
}

TEST(smtp_protocol, envelope_carries_account_and_parameters) {
  sender_router router(accounts());
  smtp_protocol protocol(settings(), router);
  protocol.on_command("EHLO c");
  protocol.on_command("MAIL FROM:<x@billing.example.com> BODY=8BITMIME RET=HDRS ENVID=abc");
  protocol.on_command(
      "RCPT TO:<bob@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob@example.org");
  protocol.on_command("RCPT TO:<carol@example.org>");
  const auto& env = protocol.current_envelope();
  EXPECT_EQ(env.sender, "x@billing.example.com");
  EXPECT_EQ(env.account, "alice@example.com");
  EXPECT_EQ(env.params.body, smtp::body_type::eight_bit_mime);
  EXPECT_EQ(env.params.ret, smtp::dsn_ret::headers);
  EXPECT_EQ(env.params.envid, "abc");
  ASSERT_EQ(env.recipients.size(), 2u);
  EXPECT_EQ(env.recipients[0].address, "bob@example.org");
  EXPECT_TRUE(env.recipients[0].params.notify.failure);
  EXPECT_TRUE(env.recipients[0].params.notify.delay);
  EXPECT_FALSE(env.recipients[0].params.notify.success);
  EXPECT_EQ(env.recipients[0].params.orcpt, "rfc822;bob@example.org");
  EXPECT_EQ(env.recipients[1].address, "carol@example.org");
}

TEST(smtp_protocol, null_sender_goes_to_default_account_or_is_refused) {
  auto with_default = accounts();
  with_default[1].is_default = true;
  sender_router router(with_default);
  smtp_protocol protocol(settings(), router);
  protocol.on_command("EHLO c");
  EXPECT_EQ(protocol.on_command("MAIL FROM:<>").reply.code, 250);
  EXPECT_EQ(protocol.current_envelope().account, "ops@example.com");

  sender_router no_default(accounts());
  smtp_protocol strict(settings(), no_default);
  strict.on_command("EHLO c");
  EXPECT_EQ(strict.on_command("MAIL FROM:<>").reply.code, 550);
}

TEST(smtp_protocol, end_data_starts_a_new_transaction) {
  sender_router router(accounts());
  smtp_protocol protocol(settings(), router);
  protocol.on_command("EHLO c");
  protocol.on_command("MAIL FROM:<alice@example.com>");
  protocol.on_command("RCPT TO:<bob@example.org>");
  ASSERT_EQ(protocol.on_command("DATA").then, smtp_protocol::next::start_data);
  protocol.end_data();
  EXPECT_TRUE(protocol.current_envelope().recipients.empty());
  EXPECT_EQ(protocol.on_command("RCPT TO:<bob@example.org>").reply.code, 503);
  EXPECT_EQ(protocol.on_command("MAIL FROM:<ops@example.com>").reply.code, 250);
  EXPECT_EQ(protocol.current_envelope().account, "ops@example.com");
}

}  // namespace
}  // namespace oauth_relay::relay
