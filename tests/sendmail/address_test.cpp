// oauth-relay-sendmail's addresses: every form a sendmail(8) user writes is
// reduced to the bare mailbox, and every injection shape (CR, LF, NUL, '<',
// '>', spaces, over-long parts, empty) is refused with its reason, in -f, in a
// recipient argument and in a -t header alike.
#include "sendmail/address.hpp"

#include <gtest/gtest.h>

#include <stdexcept>

#include "relay/smtp/parser.hpp"
#include "sendmail/message.hpp"

namespace oauth_relay::sendmail {
namespace {

using namespace std::string_literals;

constexpr std::string_view domain = "relay.example.com";

using strings = std::vector<std::string>;

TEST(sendmail_address_list, every_form_a_user_writes) {
  struct address_case {
    std::string text;
    strings mailboxes;
  };
  for (const auto& c : std::vector<address_case>{
           {"a@example.org", {"a@example.org"}},
           {"<a@example.org>", {"a@example.org"}},
           {"< a@example.org >", {"a@example.org"}},
           {"a@example.org, b@example.org", {"a@example.org", "b@example.org"}},
           {"a@example.org,,b@example.org,", {"a@example.org", "b@example.org"}},
           {"Alice Example <alice@example.org>", {"alice@example.org"}},
           {"\"Doe, John\" <john@example.org>, jane@example.org (Jane, at home)",
            {"john@example.org", "jane@example.org"}},
           {"a@example.org,\tBob <bob@example.org>", {"a@example.org", "bob@example.org"}},
           {"team: c@example.org, Dee <d@example.org>;, e@example.org",
            {"c@example.org", "d@example.org", "e@example.org"}},
           {"undisclosed-recipients:;", {}},
           {"", {}},
           {"  (only a (nested) comment) ", {}},
           {"<@relay.example,@two.example:route@example.org>", {"route@example.org"}},
           {"\"quoted local\"@example.org", {"\"quoted local\"@example.org"}},
           {"\"a\\\"b\"@example.org", {"\"a\\\"b\"@example.org"}},
           {"\"a,b\"@example.org", {"\"a,b\"@example.org"}},
           {"\"a \\\" quote <not@this>\" <real@example.org>", {"real@example.org"}},
           {"J. R. \"Bob\" Dobbs <bob@example.org>", {"bob@example.org"}},
           {"=?utf-8?q?J=C3=B6rg?= <j@example.org>", {"j@example.org"}},
           {"root", {"root@relay.example.com"}},
           {"root (cron)", {"root@relay.example.com"}},
           {"first.last", {"first.last@relay.example.com"}},
           {"user@[192.0.2.1]", {"user@[192.0.2.1]"}},
           {"user@[IPv6:2001:db8::1]", {"user@[IPv6:2001:db8::1]"}},
           {"d\xc3\xb6rte@b\xc3\xbc"
            "cher.example",
            {"d\xc3\xb6rte@b\xc3\xbc"
             "cher.example"}},
           {std::string(64, 'l') + "@example.org", {std::string(64, 'l') + "@example.org"}},
       }) {
    const auto r = parse_address_list(c.text, domain);
    EXPECT_FALSE(r.problem) << c.text << ": " << r.problem.value_or("");
    EXPECT_EQ(r.mailboxes, c.mailboxes) << c.text;
  }
}

// The shapes of the issue: each as it is written, and the reason given.
struct shape {
  std::string name;
  std::string text;
  std::string reason;
};

std::string label_of(std::size_t n) {
  return std::string(n, 'a');
}

// A domain of `n` octets: labels of 62 joined with dots (n % 63 != 0).
std::string domain_of(std::size_t n) {
  std::string out(n, 'd');
  for (std::size_t i = 62; i < n; i += 63) out[i] = '.';
  return out;
}

const std::vector<shape>& injection_shapes() {
  static const std::vector<shape> shapes = {
      {"cr", "a@example.com\rRCPT TO:<x@evil.example>", "it contains a line break (CR or LF)"},
      {"lf", "a@example.com\nRCPT TO:<x@evil.example>", "it contains a line break (CR or LF)"},
      {"crlf_command", "a@example.com>\r\nRCPT TO:<x@evil.example",
       "it contains a line break (CR or LF)"},
      {"crlf_data", "a@example.com>\r\nDATA\r\n", "it contains a line break (CR or LF)"},
      {"nul", "a@example.com\0RCPT TO:<x@evil.example>"s, "it contains a NUL byte"},
      {"control", "a\x1b@example.com", "it contains a control character"},
      {"del", "a\x7f@example.com", "it contains a control character"},
      {"closing_angle", "a@example.com> SIZE=1", "it has a '>' without a '<' before it"},
      {"opening_angle", "a@example.com<x@evil.example", "it has a '<' without its '>'"},
      {"angle_inside_angle", "<a<x@evil.example>>", "it has a '<' inside '<...>'"},
      {"text_after_angle", "<a@example.com>x@evil.example", "it has text after the closing '>'"},
      {"two_angles", "<a@example.com> <x@evil.example>", "it has text after the closing '>'"},
      {"quoted_angle", "\"a>b\"@example.com", "it has '<' or '>' inside its quoted local part"},
      {"space", "a b@example.com", "it has a space or tab outside quotes"},
      {"space_then_address", "a@example.com x@evil.example",
       "it has a space or tab outside quotes"},
      {"space_at", "a @example.com", "it has a space or tab outside quotes"},
      {"tab", "a\tb@example.com", "it has a space or tab outside quotes"},
      {"tab_at", "a@\texample.com", "it has a space or tab outside quotes"},
      {"comment_inside", "a(x)@example.com", "it has a space or tab outside quotes"},
      {"long_local_part", label_of(65) + "@example.com",
       "its local part is longer than 64 octets (RFC 5321 §4.5.3.1.1)"},
      {"long_domain", "a@" + domain_of(256),
       "its domain is longer than 255 octets (RFC 5321 §4.5.3.1.2)"},
      {"long_path", label_of(60) + "@" + domain_of(200),
       "it is longer than 254 octets, the most a path of 256 holds (RFC 5321 §4.5.3.1.3)"},
      {"empty_angles", "<>", "it has an empty address <>"},
      {"unclosed_quote", "\"a@example.com", "it has a quoted string that is not closed"},
      {"unclosed_comment", "a@example.com (x", "it has a comment '(' that is not closed"},
      {"backslash", "a\\@example.com", "it has a backslash outside quotes"},
      {"no_domain", "a@", "it has nothing after the '@'"},
      {"double_dot", "a..b@example.com", "it has a '.' without a word after it"},
      {"bad_domain", "a@-x.example", "it is not a mailbox of the form local-part@domain"},
      {"bad_literal", "a@[300.0.0.1]", "it is not a mailbox of the form local-part@domain"},
      {"smtp_parameter", "a@example.com SIZE=1", "it has a space or tab outside quotes"},
      {"stray_semicolon", "a@example.com; x@evil.example", "it has a ';' outside a group"},
      {"colon", "a@example.com: x@evil.example",
       "it has a ':' that neither opens a group nor ends a route"},
      {"unended_group", "team: a@example.com", "it has a group without the ';' that ends it"},
      {"bad_utf8", "a\xc3@example.com", "it is not a mailbox of the form local-part@domain"},
  };
  return shapes;
}

TEST(sendmail_address_list, refuses_every_injection_shape) {
  for (const auto& s : injection_shapes()) {
    const auto r = parse_address_list(s.text, domain);
    EXPECT_EQ(r.problem, s.reason) << s.name;
    EXPECT_TRUE(r.mailboxes.empty()) << s.name;
  }
  // Nothing is half-used: a good address before a bad one goes too.
  const auto r = parse_address_list("good@example.org, a\rb@example.org", domain);
  EXPECT_EQ(r.problem, "it contains a line break (CR or LF)");
  EXPECT_TRUE(r.mailboxes.empty());
}

TEST(sendmail_sender, one_mailbox_or_the_null_sender) {
  EXPECT_EQ(parse_sender("", domain).mailbox, "");
  EXPECT_EQ(parse_sender("<>", domain).mailbox, "");
  EXPECT_EQ(parse_sender("app@example.com", domain).mailbox, "app@example.com");
  EXPECT_EQ(parse_sender("<app@example.com>", domain).mailbox, "app@example.com");
  EXPECT_EQ(parse_sender("The App <app@example.com>", domain).mailbox, "app@example.com");
  EXPECT_EQ(parse_sender("root", domain).mailbox, "root@relay.example.com");
  auto two = parse_sender("a@example.com, b@example.com", domain);
  EXPECT_FALSE(two.mailbox);
  EXPECT_EQ(two.problem, "it holds more than one address");
  auto none = parse_sender("(nobody)", domain);
  EXPECT_FALSE(none.mailbox);
  EXPECT_EQ(none.problem, "it holds no address");
  for (const auto& s : injection_shapes()) {
    if (s.name == "empty_angles") continue;  // "<>" is the null sender, above
    const auto r = parse_sender(s.text, domain);
    EXPECT_FALSE(r.mailbox) << s.name;
    EXPECT_EQ(r.problem, s.reason) << s.name;
  }
}

TEST(sendmail_unfold, folding_goes_and_other_line_breaks_stay_to_be_refused) {
  EXPECT_EQ(unfold(" a@example.org,\r\n\tb@example.org\r\n"), " a@example.org,\tb@example.org");
  EXPECT_EQ(unfold(" a\r\n  b\r\n"), " a  b");
  EXPECT_EQ(unfold(" a\rb\r\n"), " a\rb");
  EXPECT_EQ(unfold(" a\r\nb\r\n"), " a\r\nb");
  EXPECT_EQ(unfold(""), "");
}

TEST(sendmail_envelope_command, builds_from_checked_mailboxes_only) {
  EXPECT_EQ(envelope_command(envelope_verb::mail_from, "a@example.com"),
            "MAIL FROM:<a@example.com>");
  EXPECT_EQ(envelope_command(envelope_verb::mail_from, ""), "MAIL FROM:<>");
  EXPECT_EQ(envelope_command(envelope_verb::rcpt_to, "\"john doe\"@example.com"),
            "RCPT TO:<\"john doe\"@example.com>");
  for (const std::string& bad :
       {std::string("a@example.com>\r\nRCPT TO:<x@evil.example"), std::string("a@b\r.example"),
        std::string("a@b\n.example"), "a\0@example.com"s, std::string("\"a>b\"@example.com"),
        std::string("\"a<b\"@example.com"), std::string("a b@example.com"), std::string("root")}) {
    EXPECT_THROW(envelope_command(envelope_verb::mail_from, bad), std::invalid_argument) << bad;
    EXPECT_THROW(envelope_command(envelope_verb::rcpt_to, bad), std::invalid_argument) << bad;
  }
  EXPECT_THROW(envelope_command(envelope_verb::rcpt_to, ""), std::invalid_argument);
}

TEST(sendmail_shown, escapes_control_characters_and_cuts) {
  EXPECT_EQ(shown("a@example.com>\r\nRCPT TO:<x@evil.example"),
            "a@example.com>\\x0d\\x0aRCPT TO:<x@evil.example");
  EXPECT_EQ(shown("a\0b\"c\\"s), "a\\x00b\\\"c\\\\");
  EXPECT_EQ(shown(std::string(300, 'x')), std::string(200, 'x') + "...");
}

environment test_env() {
  return {"cron", "relay.example.com", "Mon, 30 Nov 2026 08:00:00 +0000",
          "<1.abc@relay.example.com>"};
}

// The same shapes through prepare(): -f, a recipient argument and each of
// To, Cc and Bcc with -t all exit 64 with one line naming what was written.
TEST(sendmail_prepare_addresses, every_shape_refuses_the_message_wherever_it_is) {
  for (const auto& s : injection_shapes()) {
    if (s.name == "empty_angles") continue;  // "-f <>" is the null sender
    options f;
    f.sender = s.text;
    f.recipients = {"ops@example.org"};
    auto r = prepare(f, "Subject: x\n\ny\n", test_env());
    EXPECT_FALSE(r.value) << s.name;
    EXPECT_EQ(r.status, exit_bad_address) << s.name;
    EXPECT_EQ(r.error, "bad sender address (-f) \"" + shown(s.text) + "\": " + s.reason) << s.name;
    EXPECT_EQ(command_line_envelope(f, test_env()).error, r.error) << s.name;
  }
  for (const auto& s : injection_shapes()) {
    options o;
    o.recipients = {"ops@example.org", s.text};
    auto r = prepare(o, "Subject: x\n\ny\n", test_env());
    EXPECT_FALSE(r.value) << s.name;
    EXPECT_EQ(r.status, exit_bad_address) << s.name;
    EXPECT_EQ(r.error, "bad recipient address \"" + shown(s.text) + "\": " + s.reason) << s.name;
  }
  for (const auto& s : injection_shapes()) {
    // A line break in a header value either folds or starts the next line;
    // a bare CR stays in the field, and a NUL too.
    if (s.text.find('\n') != std::string::npos) continue;
    for (const std::string& field : {"To"s, "Cc"s, "bcc"s}) {
      options t;
      t.extract_recipients = true;
      auto r = prepare(t, "To: ops@example.org\n" + field + ": " + s.text + "\nSubject: x\n\ny\n",
                       test_env());
      EXPECT_FALSE(r.value) << s.name << " " << field;
      EXPECT_EQ(r.status, exit_bad_address) << s.name;
      EXPECT_EQ(r.error, "bad address in the " + field + ": field \"" + shown(" " + s.text) +
                             "\": " + s.reason)
          << s.name << " " << field;
    }
  }
}

TEST(sendmail_prepare_addresses, line_breaks_in_a_header_fold_or_end_the_field) {
  options t;
  t.extract_recipients = true;
  // The issue's -f value as a To: line: the CRLF ends the field, and what
  // follows is no header field, so the body starts there; the To: address
  // itself has a stray '>'.
  auto r = prepare(t, "To: a@example.com>\r\nRCPT TO:<x@evil.example\r\n\r\nb\r\n", test_env());
  EXPECT_FALSE(r.value);
  EXPECT_EQ(r.status, exit_bad_address);
  EXPECT_EQ(r.error,
            "bad address in the To: field \" a@example.com>\": it has a '>' without a '<' before "
            "it");
  // Folded onto the next line, it is one field, and refused as a whole.
  r = prepare(t, "To: a@example.com>\r\n RCPT TO:<x@evil.example\r\n\r\nb\r\n", test_env());
  EXPECT_EQ(r.status, exit_bad_address);
  EXPECT_EQ(r.error,
            "bad address in the To: field \" a@example.com> RCPT TO:<x@evil.example\": it has "
            "a '>' without a '<' before it");
}

TEST(sendmail_prepare_addresses, empty_arguments_and_bad_login_names) {
  options o;
  o.recipients = {""};
  auto r = prepare(o, "x\n", test_env());
  EXPECT_EQ(r.status, exit_bad_address);
  EXPECT_EQ(r.error, "bad recipient address \"\": it is empty");
  o.recipients = {"(nobody)"};
  r = prepare(o, "x\n", test_env());
  EXPECT_EQ(r.error, "bad recipient address \"(nobody)\": it holds no address");

  // The login name makes the default sender; one that is no local part is
  // refused, and -f is the way around it.
  auto env = test_env();
  env.login = "john doe";
  o.recipients = {"ops@example.org"};
  r = prepare(o, "x\n", env);
  EXPECT_EQ(r.status, exit_bad_address);
  EXPECT_EQ(r.error,
            "bad default sender (the login name) \"john doe\": it has a space or tab outside "
            "quotes; give the sender with -f");
  o.sender = "app@example.com";
  r = prepare(o, "x\n", env);
  ASSERT_TRUE(r.value) << r.error;
  EXPECT_EQ(r.value->sender, "app@example.com");
  // With the null sender the login name is still needed for a From: field.
  o.sender = "";
  r = prepare(o, "x\n", env);
  EXPECT_EQ(r.status, exit_bad_address);
  EXPECT_EQ(r.error,
            "bad default sender (the login name) \"john doe\": it has a space or tab outside "
            "quotes; give the message a From: field");
  r = prepare(o, "From: app@example.com\n\nx\n", env);
  ASSERT_TRUE(r.value) << r.error;
  EXPECT_EQ(r.value->sender, "");
}

TEST(sendmail_prepare_addresses, arguments_are_address_lists_and_every_result_is_a_mailbox) {
  options o;
  o.sender = "\"The App\" <app@example.com>";
  o.recipients = {"Ops <ops@example.org>, dev@example.org", "root", "\"john doe\"@example.org"};
  o.extract_recipients = true;
  auto r = prepare(o,
                   "To: Alice <alice@example.org>,\n bob@example.org (Bob)\n"
                   "Cc: team: \"c d\"@example.org;\nSubject: x\n\ny\n",
                   test_env());
  ASSERT_TRUE(r.value) << r.error;
  EXPECT_EQ(r.value->sender, "app@example.com");
  EXPECT_EQ(r.value->recipients,
            (strings{"ops@example.org", "dev@example.org", "root@relay.example.com",
                     "\"john doe\"@example.org", "alice@example.org", "bob@example.org",
                     "\"c d\"@example.org"}));
  for (const auto& m : r.value->recipients) {
    EXPECT_TRUE(smtp::is_valid_mailbox(m, true)) << m;
    EXPECT_EQ(envelope_command(envelope_verb::rcpt_to, m), "RCPT TO:<" + m + ">");
  }
}

}  // namespace
}  // namespace oauth_relay::sendmail
