// The dialogue with who the client is: permit at MAIL FROM, require_login,
// where AUTH and STARTTLS are offered, AUTH's replies and failure count, and
// the state after TLS starts. Tables of lines and exact replies, as
// protocol_test.cpp.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/text.hpp"
#include "relay/smtp/protocol.hpp"

namespace oauth_relay::relay {
namespace {

using N = smtp_protocol::next;

std::string plain(std::string_view user, std::string_view password) {
  std::string raw;
  raw += '\0';
  raw += user;
  raw += '\0';
  raw += password;
  return base64_encode(raw);
}

// shop@ only for uid 33 (www-data) or the login "scanner"; ops@ for group
// 1000; open@ for everybody (no permit).
std::vector<config::account_settings> accounts() {
  config::account_settings shop;
  shop.address = "shop@example.com";
  shop.senders = {"shop@example.com"};
  shop.permit = config::permit_settings{{{"www-data", 33}}, {}, {"scanner"}};
  config::account_settings ops;
  ops.address = "ops@example.com";
  ops.senders = {"ops@example.com"};
  ops.permit = config::permit_settings{{}, {{"staff", 1000}}, {}};
  config::account_settings open;
  open.address = "open@example.com";
  open.senders = {"open@example.com"};
  return {shop, ops, open};
}

struct options {
  bool starttls = true;
  bool logins = true;
  bool require_login = false;
};

protocol_settings make_settings(options o) {
  protocol_settings s;
  s.hostname = "relay.test";
  s.max_message_size = 1000;
  s.max_recipients = 3;
  s.starttls = o.starttls;
  s.logins = o.logins;
  s.require_login = o.require_login;
  return s;
}

client_identity remote() {
  return {transport::tcp, "192.0.2.7", std::nullopt, {}, std::nullopt};
}
client_identity loopback(std::optional<std::uint32_t> uid, std::vector<std::uint32_t> groups = {}) {
  return {transport::tcp_loopback, "127.0.0.1", uid, std::move(groups), std::nullopt};
}
client_identity unix_peer(std::uint32_t uid, std::vector<std::uint32_t> groups = {}) {
  return {transport::unix_socket, "", uid, std::move(groups), 4242};
}

// "<tls>" stands for a completed handshake (on_tls_started); "<ok NAME>" and
// "<bad NAME>" for the session's password check of the credentials just given.
struct step {
  std::string line;
  int code;
  std::string enhanced;
  N then = N::reply;
};

struct dialogue {
  std::string name;
  options settings;
  client_identity identity;
  std::vector<step> steps;
};

const std::vector<dialogue> dialogues = {
    // permit at MAIL FROM
    {"uid_in_local_users",
     {},
     loopback(33),
     {{"EHLO c", 250, ""}, {"MAIL FROM:<shop@example.com>", 250, "2.1.0"}}},
    {"other_uid_refused",
     {},
     loopback(34),
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<shop@example.com>", 550, "5.7.1"},
      {"MAIL FROM:<open@example.com>", 250, "2.1.0"}}},
    {"no_identity_refused",
     {},
     loopback(std::nullopt),
     {{"EHLO c", 250, ""}, {"MAIL FROM:<shop@example.com>", 550, "5.7.1"}}},
    {"unix_uid_in_local_users",
     {},
     unix_peer(33),
     {{"EHLO c", 250, ""}, {"MAIL FROM:<shop@example.com>", 250, "2.1.0"}}},
    {"group_member",
     {},
     unix_peer(1001, {1001, 1000}),
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<ops@example.com>", 250, "2.1.0"},
      {"RSET", 250, "2.0.0"},
      {"MAIL FROM:<shop@example.com>", 550, "5.7.1"}}},
    {"not_a_group_member",
     {},
     loopback(1002, {1002}),
     {{"EHLO c", 250, ""}, {"MAIL FROM:<ops@example.com>", 550, "5.7.1"}}},
    {"login_in_permit",
     {},
     loopback(34),
     {{"EHLO c", 250, ""},
      {"AUTH PLAIN " + plain("scanner", "pw"), 0, "", N::check_credentials},
      {"<ok scanner>", 235, "2.7.0"},
      {"MAIL FROM:<shop@example.com>", 250, "2.1.0"}}},
    {"login_not_in_permit",
     {},
     loopback(34),
     {{"EHLO c", 250, ""},
      {"AUTH PLAIN " + plain("printer", "pw"), 0, "", N::check_credentials},
      {"<ok printer>", 235, "2.7.0"},
      {"MAIL FROM:<shop@example.com>", 550, "5.7.1"},
      {"MAIL FROM:<ops@example.com>", 550, "5.7.1"},
      {"MAIL FROM:<open@example.com>", 250, "2.1.0"}}},
    // require_login
    {"require_login_before_auth",
     {.require_login = true},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<open@example.com>", 530, "5.7.0"},
      {"AUTH LOGIN", 334, ""},
      {base64_encode("scanner"), 334, ""},
      {base64_encode("pw"), 0, "", N::check_credentials},
      {"<ok scanner>", 235, "2.7.0"},
      {"MAIL FROM:<open@example.com>", 250, "2.1.0"}}},
    // where AUTH is offered
    {"auth_needs_tls_from_another_host",
     {},
     remote(),
     {{"EHLO c", 250, ""}, {"AUTH PLAIN " + plain("scanner", "pw"), 538, "5.7.11"}}},
    {"auth_after_starttls_from_another_host",
     {},
     remote(),
     {{"EHLO c", 250, ""},
      {"STARTTLS", 220, "2.0.0", N::start_tls},
      {"<tls>", 0, ""},
      {"EHLO c", 250, ""},
      {"AUTH PLAIN " + plain("scanner", "pw"), 0, "", N::check_credentials},
      {"<ok scanner>", 235, "2.7.0"},
      {"MAIL FROM:<shop@example.com>", 250, "2.1.0"}}},
    {"auth_without_logins_file",
     {.logins = false},
     loopback(33),
     {{"EHLO c", 250, ""}, {"AUTH PLAIN " + plain("scanner", "pw"), 502, "5.5.1"}}},
    // hostile AUTH dialogues
    {"auth_before_ehlo",
     {},
     loopback(33),
     {{"AUTH PLAIN " + plain("scanner", "pw"), 503, "5.5.1"}}},
    {"auth_after_helo",
     {},
     loopback(33),
     {{"HELO c", 250, ""}, {"AUTH PLAIN " + plain("scanner", "pw"), 503, "5.5.1"}}},
    {"auth_twice",
     {},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"AUTH PLAIN " + plain("scanner", "pw"), 0, "", N::check_credentials},
      {"<ok scanner>", 235, "2.7.0"},
      {"AUTH PLAIN " + plain("scanner", "pw"), 503, "5.5.1"}}},
    {"auth_in_transaction",
     {},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<open@example.com>", 250, "2.1.0"},
      {"AUTH PLAIN " + plain("scanner", "pw"), 503, "5.5.1"}}},
    {"auth_cancelled_then_commands_again",
     {},
     loopback(33),
     {{"EHLO c", 250, ""}, {"AUTH LOGIN", 334, ""}, {"*", 501, "5.0.0"}, {"NOOP", 250, "2.0.0"}}},
    {"auth_malformed_base64",
     {},
     loopback(33),
     {{"EHLO c", 250, ""}, {"AUTH PLAIN %%%%", 501, "5.5.2"}, {"NOOP", 250, "2.0.0"}}},
    {"auth_overlong_answer",
     {},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"AUTH PLAIN", 334, ""},
      {"<too long>", 500, "5.5.6"},
      {"NOOP", 250, "2.0.0"}}},
    {"auth_answer_is_never_a_command",
     {},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"AUTH LOGIN", 334, ""},
      {"MAIL FROM:<open@example.com>", 501, "5.5.2"},
      {"QUIT", 221, "2.0.0", N::close}}},
    {"three_failures_close",
     {},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"AUTH PLAIN " + plain("scanner", "a"), 0, "", N::check_credentials},
      {"<bad scanner>", 535, "5.7.8"},
      {"AUTH PLAIN " + plain("scanner", "b"), 0, "", N::check_credentials},
      {"<bad scanner>", 535, "5.7.8"},
      {"AUTH PLAIN " + plain("scanner", "c"), 0, "", N::check_credentials},
      {"<bad scanner>", 421, "4.7.0", N::close}}},
    // STARTTLS
    {"starttls_not_configured",
     {.starttls = false},
     loopback(33),
     {{"EHLO c", 250, ""}, {"STARTTLS", 502, "5.5.1"}}},
    {"starttls_not_on_unix", {}, unix_peer(33), {{"EHLO c", 250, ""}, {"STARTTLS", 502, "5.5.1"}}},
    {"starttls_before_ehlo", {}, remote(), {{"STARTTLS", 503, "5.5.1"}}},
    {"starttls_with_argument", {}, remote(), {{"EHLO c", 250, ""}, {"STARTTLS now", 501, "5.5.4"}}},
    {"starttls_in_transaction",
     {},
     loopback(33),
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<open@example.com>", 250, "2.1.0"},
      {"STARTTLS", 503, "5.5.1"}}},
    {"starttls_resets_to_before_ehlo",
     {},
     remote(),
     {{"EHLO c", 250, ""},
      {"STARTTLS", 220, "2.0.0", N::start_tls},
      {"<tls>", 0, ""},
      {"MAIL FROM:<open@example.com>", 503, "5.5.1"},
      {"EHLO c", 250, ""},
      {"STARTTLS", 503, "5.5.1"},
      {"MAIL FROM:<open@example.com>", 250, "2.1.0"}}},
    {"starttls_forgets_the_login",
     {},
     loopback(34),
     {{"EHLO c", 250, ""},
      {"AUTH PLAIN " + plain("scanner", "pw"), 0, "", N::check_credentials},
      {"<ok scanner>", 235, "2.7.0"},
      {"STARTTLS", 220, "2.0.0", N::start_tls},
      {"<tls>", 0, ""},
      {"EHLO c", 250, ""},
      {"MAIL FROM:<shop@example.com>", 550, "5.7.1"}}},
};

class identity_table : public testing::TestWithParam<dialogue> {};

TEST_P(identity_table, replies_as_specified) {
  const auto& d = GetParam();
  sender_router router(accounts());
  smtp_protocol protocol(make_settings(d.settings), router, d.identity);
  int index = 0;
  for (const auto& s : d.steps) {
    smtp_protocol::outcome outcome;
    if (s.line == "<tls>") {
      protocol.on_tls_started();
      ++index;
      continue;
    }
    if (s.line.starts_with("<ok ") || s.line.starts_with("<bad ")) {
      const auto given = protocol.take_credentials();
      const std::string name =
          s.line.substr(s.line.find(' ') + 1, s.line.size() - s.line.find(' ') - 2);
      EXPECT_EQ(given.name, name) << "step " << index;
      outcome = protocol.on_credentials_checked(s.line.starts_with("<ok "), given.name);
    } else if (s.line == "<too long>") {
      outcome = protocol.on_line_too_long();
    } else {
      outcome = protocol.on_command(s.line);
    }
    EXPECT_EQ(outcome.reply.code, s.code)
        << "step " << index << ": " << s.line << " -> " << outcome.reply.wire();
    EXPECT_EQ(outcome.reply.enhanced, s.enhanced) << "step " << index << ": " << s.line;
    EXPECT_EQ(outcome.then, s.then) << "step " << index << ": " << s.line;
    ++index;
  }
}

INSTANTIATE_TEST_SUITE_P(dialogues, identity_table, testing::ValuesIn(dialogues),
                         [](const auto& info) { return info.param.name; });

std::string ehlo_keywords(options o, client_identity identity, bool tls = false) {
  sender_router router(accounts());
  smtp_protocol protocol(make_settings(o), router, std::move(identity));
  if (tls) {
    protocol.on_command("EHLO c");
    protocol.on_command("STARTTLS");
    protocol.on_tls_started();
  }
  std::string out;
  const auto reply = protocol.on_command("EHLO c").reply;
  for (std::size_t i = 1; i < reply.lines.size(); ++i) out += reply.lines[i] + ";";
  return out;
}

TEST(smtp_protocol_identity, ehlo_offers_starttls_and_auth_where_they_belong) {
  const std::string base = "PIPELINING;SIZE 1000;8BITMIME;SMTPUTF8;ENHANCEDSTATUSCODES;DSN;";
  // From another host: STARTTLS, and AUTH only once TLS is on.
  EXPECT_EQ(ehlo_keywords({}, remote()), base + "STARTTLS;HELP;");
  EXPECT_EQ(ehlo_keywords({}, remote(), true), base + "AUTH PLAIN LOGIN;HELP;");
  // This machine: AUTH without TLS too.
  EXPECT_EQ(ehlo_keywords({}, loopback(33)), base + "STARTTLS;AUTH PLAIN LOGIN;HELP;");
  EXPECT_EQ(ehlo_keywords({}, unix_peer(33)), base + "AUTH PLAIN LOGIN;HELP;");
  // Neither without tls and logins_file.
  EXPECT_EQ(ehlo_keywords({.starttls = false, .logins = false}, remote()), base + "HELP;");
  EXPECT_EQ(ehlo_keywords({.starttls = false}, remote()), base + "HELP;");
}

TEST(smtp_protocol_identity, refusal_names_neither_account_nor_rule_and_reports_both) {
  sender_router router(accounts());
  smtp_protocol protocol(make_settings({}), router, loopback(34));
  protocol.on_command("EHLO c");
  const auto refused = protocol.on_command("MAIL FROM:<shop@example.com>");
  // The same words as for a sender no account takes.
  EXPECT_EQ(refused.reply.wire(),
            "550 5.7.1 Sender <shop@example.com> is not allowed to send through this relay\r\n");
  ASSERT_TRUE(refused.refused);
  EXPECT_EQ(refused.refused->sender, "shop@example.com");
  EXPECT_EQ(refused.refused->account, "shop@example.com");
  const auto unknown = protocol.on_command("MAIL FROM:<nobody@example.net>");
  EXPECT_EQ(unknown.reply.wire(),
            "550 5.7.1 Sender <nobody@example.net> is not allowed to send through this relay\r\n");
  EXPECT_FALSE(unknown.refused);
}

TEST(smtp_protocol_identity, auth_lines_are_marked_secret) {
  sender_router router(accounts());
  smtp_protocol protocol(make_settings({}), router, loopback(33));
  EXPECT_FALSE(protocol.on_command("EHLO c").secret_line);
  EXPECT_TRUE(protocol.on_command("AUTH LOGIN").secret_line);
  EXPECT_TRUE(protocol.on_command(base64_encode("u")).secret_line);
  EXPECT_TRUE(protocol.on_command(base64_encode("p")).secret_line);
  const auto given = protocol.take_credentials();
  EXPECT_EQ(given.password.value(), "p");
  EXPECT_FALSE(protocol.on_credentials_checked(false, given.name).secret_line);
  EXPECT_FALSE(protocol.on_command("NOOP").secret_line);
}

TEST(smtp_protocol_identity, received_with_says_tls_and_login) {
  sender_router router(accounts());
  smtp_protocol protocol(make_settings({}), router, remote());
  protocol.on_command("HELO c");
  EXPECT_EQ(protocol.received_with(), "SMTP");
  protocol.on_command("EHLO c");
  EXPECT_EQ(protocol.received_with(), "ESMTP");
  protocol.on_command("STARTTLS");
  protocol.on_tls_started();
  protocol.on_command("EHLO c");
  EXPECT_EQ(protocol.received_with(), "ESMTPS");
  protocol.on_command("AUTH PLAIN " + plain("scanner", "pw"));
  protocol.on_credentials_checked(true, protocol.take_credentials().name);
  EXPECT_EQ(protocol.received_with(), "ESMTPSA");
  protocol.on_command("MAIL FROM:<shop@example.com> SMTPUTF8");
  EXPECT_EQ(protocol.received_with(), "UTF8SMTPSA");
}

TEST(smtp_protocol_identity, mail_takes_and_drops_the_auth_parameter) {
  sender_router router(accounts());
  smtp_protocol protocol(make_settings({}), router, loopback(33));
  protocol.on_command("EHLO c");
  EXPECT_EQ(protocol.on_command("MAIL FROM:<shop@example.com> AUTH=<>").reply.code, 250);
  protocol.on_command("RSET");
  EXPECT_EQ(protocol.on_command("MAIL FROM:<shop@example.com> AUTH=a+2Bb").reply.code, 250);
  protocol.on_command("RSET");
  EXPECT_EQ(protocol.on_command("MAIL FROM:<shop@example.com> AUTH=").reply.code, 555);
}

TEST(client_identity, received_comment) {
  EXPECT_EQ(received_comment(remote(), std::nullopt), "[192.0.2.7]");
  EXPECT_EQ(received_comment(loopback(33), std::nullopt), "[127.0.0.1] uid 33");
  EXPECT_EQ(received_comment(loopback(std::nullopt), std::nullopt), "[127.0.0.1]");
  EXPECT_EQ(received_comment(unix_peer(0), std::nullopt), "unix socket uid 0");
  EXPECT_EQ(received_comment(remote(), std::string("scanner")),
            "[192.0.2.7] authenticated as scanner");
}

}  // namespace
}  // namespace oauth_relay::relay
