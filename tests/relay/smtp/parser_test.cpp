// Table tests for SMTP command, path and ESMTP parameter parsing: every verb,
// every parameter valid and invalid, the exact error reply, and the limits.
#include "relay/smtp/parser.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <ostream>
#include <string>

namespace oauth_relay::smtp {
namespace {

std::string name_of(std::string s) {
  for (char& c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) c = '_';
  }
  return s;
}

// Readable names for failing cases instead of gtest's byte dumps.
template <typename Case>
void print_case(const Case& c, std::ostream* os) {
  *os << ::testing::PrintToString(c.name) << " " << ::testing::PrintToString(c.argument);
}

// --- parse_command -----------------------------------------------------------

struct command_case {
  std::string line;
  verb name;
  std::string argument;
  bool argument_ok = true;
};
void PrintTo(const command_case& c, std::ostream* os) {
  *os << ::testing::PrintToString(c.line);
}

class ParseCommand : public ::testing::TestWithParam<command_case> {};

TEST_P(ParseCommand, SplitsVerbAndArgument) {
  const command_case& c = GetParam();
  const parsed_command p = parse_command(c.line);
  EXPECT_EQ(p.cmd.name, c.name) << c.line;
  EXPECT_EQ(p.cmd.argument, c.argument) << c.line;
  EXPECT_EQ(p.argument_ok, c.argument_ok) << c.line;
}

INSTANTIATE_TEST_SUITE_P(
    Verbs, ParseCommand,
    ::testing::Values(
        command_case{"HELO client.example", verb::helo, "client.example"},
        command_case{"helo client.example", verb::helo, "client.example"},
        command_case{"EHLO [127.0.0.1]", verb::ehlo, "[127.0.0.1]"},
        command_case{"eHlO x", verb::ehlo, "x"},
        command_case{"MAIL FROM:<a@b.example>", verb::mail, "<a@b.example>"},
        command_case{"mail from:<a@b.example> SIZE=10", verb::mail, "<a@b.example> SIZE=10"},
        command_case{"MAIL FROM: <a@b.example>", verb::mail, "<a@b.example>"},
        command_case{"MAIL FROM:   <a@b.example>   ", verb::mail, "<a@b.example>"},
        command_case{"MAIL  FROM:<a@b.example>", verb::mail, "<a@b.example>"},
        command_case{"MAIL FROM:", verb::mail, ""}, command_case{"MAIL", verb::mail, "", false},
        command_case{"MAIL TO:<a@b.example>", verb::mail, "TO:<a@b.example>", false},
        command_case{"MAIL FROM <a@b.example>", verb::mail, "FROM <a@b.example>", false},
        command_case{"MAIL FRO:<a@b.example>", verb::mail, "FRO:<a@b.example>", false},
        command_case{"RCPT TO:<a@b.example>", verb::rcpt, "<a@b.example>"},
        command_case{"rcpt to: <a@b.example> NOTIFY=NEVER", verb::rcpt,
                     "<a@b.example> NOTIFY=NEVER"},
        command_case{"RCPT TO:", verb::rcpt, ""}, command_case{"RCPT", verb::rcpt, "", false},
        command_case{"RCPT FROM:<a@b.example>", verb::rcpt, "FROM:<a@b.example>", false},
        command_case{"DATA", verb::data, ""}, command_case{"data", verb::data, ""},
        command_case{"DATA   ", verb::data, ""}, command_case{"DATA x", verb::data, "x"},
        command_case{"RSET", verb::rset, ""}, command_case{"NOOP", verb::noop, ""},
        command_case{"NOOP anything at all", verb::noop, "anything at all"},
        command_case{"QUIT", verb::quit, ""}, command_case{"Quit ", verb::quit, ""},
        command_case{"VRFY postmaster", verb::vrfy, "postmaster"},
        command_case{"EXPN list", verb::expn, "list"}, command_case{"HELP", verb::help, ""},
        command_case{"HELP MAIL", verb::help, "MAIL"}, command_case{"STARTTLS", verb::starttls, ""},
        command_case{"starttls", verb::starttls, ""},
        command_case{"AUTH PLAIN AGZvbwBiYXI=", verb::auth, "PLAIN AGZvbwBiYXI="},
        command_case{"BDAT 100 LAST", verb::bdat, "100 LAST"}),
    [](const auto& info) { return name_of(info.param.line) + "_" + std::to_string(info.index); });

INSTANTIATE_TEST_SUITE_P(
    Malformed, ParseCommand,
    ::testing::Values(
        command_case{"", verb::unknown, ""}, command_case{"   ", verb::unknown, ""},
        command_case{"MAILX FROM:<a@b.example>", verb::unknown, "FROM:<a@b.example>"},
        command_case{"MAI", verb::unknown, ""}, command_case{"DATAX", verb::unknown, ""},
        command_case{"STARTTLSX", verb::unknown, ""}, command_case{"START", verb::unknown, ""},
        command_case{" DATA", verb::unknown, "DATA"}, command_case{"DATA\t", verb::unknown, ""},
        command_case{"MAIL:FROM:<a@b.example>", verb::unknown, ""},
        command_case{"GET / HTTP/1.1", verb::unknown, "/ HTTP/1.1"},
        command_case{"XCLIENT ADDR=1.2.3.4", verb::unknown, "ADDR=1.2.3.4"}),
    [](const auto& info) { return "m" + std::to_string(info.index); });

// --- MAIL FROM ---------------------------------------------------------------

const std::string local64(64, 'l');
const std::string local65(65, 'l');
// A valid mailbox of exactly `length` octets: "user@ddd.ddd...".
std::string mailbox_of_length(std::size_t length) {
  std::string m = "user@";
  std::size_t left = length - m.size();
  while (left > 0) {
    std::size_t label = std::min<std::size_t>(left, 60);
    if (left - label == 1) --label;  // never leave room for a lone dot
    m.append(label, 'd');
    left -= label;
    if (left > 0) {
      m += '.';
      --left;
    }
  }
  return m;
}

constexpr const char* bad_sender = "501 5.1.7 Bad sender address syntax\r\n";
constexpr const char* bad_recipient = "501 5.1.3 Bad recipient address syntax\r\n";
constexpr const char* needs_utf8 = "553 5.6.7 Non-ASCII address needs SMTPUTF8\r\n";

struct path_case {
  std::string name;
  std::string argument;
  std::string address;  // expected address when `reply` is empty
  std::string reply;    // expected wire form of the error reply
};
void PrintTo(const path_case& c, std::ostream* os) {
  print_case(c, os);
}

class MailFromPath : public ::testing::TestWithParam<path_case> {};

TEST_P(MailFromPath, ParsesOrRefuses) {
  const path_case& c = GetParam();
  const auto result = parse_mail_from(c.argument);
  if (c.reply.empty()) {
    ASSERT_TRUE(std::holds_alternative<mail_from>(result))
        << c.argument << " -> " << std::get<reply>(result).wire();
    EXPECT_EQ(std::get<mail_from>(result).address, c.address);
  } else {
    ASSERT_TRUE(std::holds_alternative<reply>(result)) << c.argument;
    EXPECT_EQ(std::get<reply>(result).wire(), c.reply);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MailFromPath,
    ::testing::Values(
        path_case{"plain", "<user@example.com>", "user@example.com", ""},
        path_case{"surrounding_spaces", "  <user@example.com>  ", "user@example.com", ""},
        path_case{"null_sender", "<>", "", ""},
        path_case{"null_sender_with_params", "<> SIZE=10", "", ""},
        path_case{"bare_mailbox", "user@example.com", "user@example.com", ""},
        path_case{"bare_mailbox_with_params", "user@example.com SIZE=10", "user@example.com", ""},
        path_case{"bare_with_space_in_quotes", "\"a b\"@example.com", "", bad_sender},
        path_case{"bare_not_a_mailbox", "user", "", bad_sender},
        path_case{"dots", "<first.last@sub.example.com>", "first.last@sub.example.com", ""},
        path_case{"atext_specials", "<a!#$%&'*+-/=?^_`{|}~@example.com>",
                  "a!#$%&'*+-/=?^_`{|}~@example.com", ""},
        path_case{"single_label_domain", "<root@localhost>", "root@localhost", ""},
        path_case{"numeric_labels", "<a@123.45.example>", "a@123.45.example", ""},
        path_case{"quoted_local", "<\"john doe\"@example.com>", "\"john doe\"@example.com", ""},
        path_case{"quoted_pair", "<\"a\\\"b\\\\c\"@example.com>", "\"a\\\"b\\\\c\"@example.com",
                  ""},
        path_case{"quoted_gt_and_at", "<\"a>b@c\"@example.com> SIZE=1", "\"a>b@c\"@example.com",
                  ""},
        path_case{"quoted_empty", "<\"\"@example.com>", "\"\"@example.com", ""},
        path_case{"quoted_unterminated", "<\"abc@example.com>", "", bad_sender},
        path_case{"quoted_control_char", "<\"a\tb\"@example.com>", "", bad_sender},
        path_case{"quoted_pair_control", "<\"a\\\x01\"@example.com>", "", bad_sender},
        path_case{"source_route", "<@a.example,@b.example:user@c.example>", "user@c.example", ""},
        path_case{"source_route_one", "<@a.example:user@c.example>", "user@c.example", ""},
        path_case{"source_route_bad_domain", "<@a..example:user@c.example>", "", bad_sender},
        path_case{"source_route_no_colon", "<@a.example,user@c.example>", "", bad_sender},
        path_case{"source_route_empty_item", "<@a.example,,@b.example:u@c.example>", "",
                  bad_sender},
        path_case{"source_route_missing_at", "<@a.example,b.example:u@c.example>", "", bad_sender},
        path_case{"source_route_bare", "@a.example:user@c.example", "", bad_sender},
        path_case{"ipv4_literal", "<a@[192.0.2.1]>", "a@[192.0.2.1]", ""},
        path_case{"ipv4_literal_255", "<a@[255.255.255.255]>", "a@[255.255.255.255]", ""},
        path_case{"ipv4_literal_256", "<a@[256.1.1.1]>", "", bad_sender},
        path_case{"ipv4_literal_short", "<a@[1.2.3]>", "", bad_sender},
        path_case{"ipv4_literal_long", "<a@[1.2.3.4.5]>", "", bad_sender},
        path_case{"ipv4_literal_four_digits", "<a@[0001.2.3.4]>", "", bad_sender},
        path_case{"ipv6_literal", "<a@[IPv6:2001:db8::1]>", "a@[IPv6:2001:db8::1]", ""},
        path_case{"ipv6_literal_full", "<a@[IPv6:1:2:3:4:5:6:7:8]>", "a@[IPv6:1:2:3:4:5:6:7:8]",
                  ""},
        path_case{"ipv6_literal_v4", "<a@[IPv6:::ffff:192.0.2.1]>", "a@[IPv6:::ffff:192.0.2.1]",
                  ""},
        path_case{"ipv6_literal_loopback", "<a@[ipv6:::1]>", "a@[ipv6:::1]", ""},
        path_case{"ipv6_literal_nine_groups", "<a@[IPv6:1:2:3:4:5:6:7:8:9]>", "", bad_sender},
        path_case{"ipv6_literal_two_compressions", "<a@[IPv6:1::2::3]>", "", bad_sender},
        path_case{"ipv6_literal_seven_and_compression", "<a@[IPv6:1:2:3:4:5:6:7::]>", "",
                  bad_sender},
        path_case{"ipv6_literal_bad_hex", "<a@[IPv6:12345::1]>", "", bad_sender},
        path_case{"ipv6_literal_no_tag", "<a@[2001:db8::1]>", "", bad_sender},
        path_case{"other_literal_tag", "<a@[X-tag:abc]>", "", bad_sender},
        path_case{"literal_unclosed", "<a@[1.2.3.4>", "", bad_sender},
        path_case{"empty", "", "", bad_sender},
        path_case{"missing_close", "<user@example.com", "", bad_sender},
        path_case{"missing_open", "user@example.com>", "", bad_sender},
        path_case{"text_after_path", "<user@example.com>SIZE=10", "", bad_sender},
        path_case{"no_at", "<user>", "", bad_sender},
        path_case{"no_local", "<@example.com>", "", bad_sender},
        path_case{"no_domain", "<user@>", "", bad_sender},
        path_case{"two_ats", "<a@b@example.com>", "", bad_sender},
        path_case{"leading_dot", "<.a@example.com>", "", bad_sender},
        path_case{"trailing_dot", "<a.@example.com>", "", bad_sender},
        path_case{"double_dot", "<a..b@example.com>", "", bad_sender},
        path_case{"space_in_local", "<a b@example.com>", "", bad_sender},
        path_case{"domain_trailing_dot", "<a@example.com.>", "", bad_sender},
        path_case{"domain_empty_label", "<a@example..com>", "", bad_sender},
        path_case{"domain_leading_hyphen", "<a@-example.com>", "", bad_sender},
        path_case{"domain_trailing_hyphen", "<a@example-.com>", "", bad_sender},
        path_case{"domain_inner_hyphen", "<a@ex-am-ple.com>", "a@ex-am-ple.com", ""},
        path_case{"domain_underscore", "<a@my_host.example>", "", bad_sender},
        path_case{"domain_label_63", "<a@" + std::string(63, 'd') + ".example>",
                  "a@" + std::string(63, 'd') + ".example", ""},
        path_case{"domain_label_64", "<a@" + std::string(64, 'd') + ".example>", "", bad_sender},
        path_case{"postmaster_is_not_a_sender", "<postmaster>", "", bad_sender},
        path_case{"local_part_64", "<" + local64 + "@example.com>", local64 + "@example.com", ""},
        path_case{"local_part_65", "<" + local65 + "@example.com>", "", bad_sender},
        path_case{"quoted_local_part_64", "<\"" + std::string(62, 'q') + "\"@example.com>",
                  "\"" + std::string(62, 'q') + "\"@example.com", ""},
        path_case{"quoted_local_part_65", "<\"" + std::string(63, 'q') + "\"@example.com>", "",
                  bad_sender},
        path_case{"path_256", "<" + mailbox_of_length(254) + ">", mailbox_of_length(254), ""},
        path_case{"path_257", "<" + mailbox_of_length(255) + ">", "", bad_sender},
        path_case{"bare_path_256", mailbox_of_length(254), mailbox_of_length(254), ""},
        path_case{"bare_path_257", mailbox_of_length(255), "", bad_sender},
        path_case{"route_counts_in_path", "<@r.example:" + mailbox_of_length(243) + ">",
                  mailbox_of_length(243), ""},
        path_case{"route_counts_in_path_over", "<@r.example:" + mailbox_of_length(244) + ">", "",
                  bad_sender},
        path_case{"utf8_with_smtputf8", "<j\xC3\xB6rg@b\xC3\xBC\x63her.example> SMTPUTF8",
                  "j\xC3\xB6rg@b\xC3\xBC\x63her.example", ""},
        path_case{"utf8_quoted_with_smtputf8", "<\"j\xC3\xB6 rg\"@example.com> SMTPUTF8",
                  "\"j\xC3\xB6 rg\"@example.com", ""},
        path_case{"utf8_four_octets", "<\xF0\x9F\x98\x80@example.com> smtputf8",
                  "\xF0\x9F\x98\x80@example.com", ""},
        path_case{"utf8_local_without", "<j\xC3\xB6rg@example.com>", "", needs_utf8},
        path_case{"utf8_domain_without", "<a@b\xC3\xBC\x63her.example> SIZE=5", "", needs_utf8},
        path_case{"utf8_route_without", "<@b\xC3\xBC\x63her.example:a@example.com>", "",
                  needs_utf8},
        path_case{"utf8_truncated", "<j\xC3@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_lone_continuation", "<j\x80@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_overlong", "<j\xC0\xAF@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_overlong_3", "<j\xE0\x80\xAF@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_surrogate", "<j\xED\xA0\x80@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_above_max", "<j\xF4\x90\x80\x80@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_f5", "<j\xF5\x80\x80\x80@example.com> SMTPUTF8", "", bad_sender},
        path_case{"utf8_malformed_without", "<j\xC3@example.com>", "", bad_sender},
        path_case{"utf8_smtputf8_on_other_command", "<j\xC3\xB6rg@example.com> BODY=8BITMIME", "",
                  needs_utf8}),
    [](const auto& info) { return info.param.name; });

// --- RCPT TO -----------------------------------------------------------------

struct rcpt_case {
  std::string name;
  std::string argument;
  bool smtputf8;
  std::string address;
  std::string reply;
};
void PrintTo(const rcpt_case& c, std::ostream* os) {
  print_case(c, os);
}

class RcptToPath : public ::testing::TestWithParam<rcpt_case> {};

TEST_P(RcptToPath, ParsesOrRefuses) {
  const rcpt_case& c = GetParam();
  const auto result = parse_rcpt_to(c.argument, c.smtputf8);
  if (c.reply.empty()) {
    ASSERT_TRUE(std::holds_alternative<rcpt_to>(result))
        << c.argument << " -> " << std::get<reply>(result).wire();
    EXPECT_EQ(std::get<rcpt_to>(result).address, c.address);
  } else {
    ASSERT_TRUE(std::holds_alternative<reply>(result)) << c.argument;
    EXPECT_EQ(std::get<reply>(result).wire(), c.reply);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RcptToPath,
    ::testing::Values(
        rcpt_case{"plain", "<user@example.com>", false, "user@example.com", ""},
        rcpt_case{"bare", "user@example.com", false, "user@example.com", ""},
        rcpt_case{"null_path_refused", "<>", false, "", bad_recipient},
        rcpt_case{"postmaster", "<postmaster>", false, "postmaster", ""},
        rcpt_case{"postmaster_any_case", "<PostMaster>", false, "PostMaster", ""},
        rcpt_case{"postmaster_with_domain", "<postmaster@example.com>", false,
                  "postmaster@example.com", ""},
        rcpt_case{"postmaster_bare_refused", "postmaster", false, "", bad_recipient},
        rcpt_case{"postmaster_with_route_refused", "<@a.example:postmaster>", false, "",
                  bad_recipient},
        rcpt_case{"other_local_only_refused", "<webmaster>", false, "", bad_recipient},
        rcpt_case{"source_route", "<@a.example,@b.example:user@c.example>", false, "user@c.example",
                  ""},
        rcpt_case{"quoted", "<\"john doe\"@example.com>", false, "\"john doe\"@example.com", ""},
        rcpt_case{"local_part_64", "<" + local64 + "@example.com>", false, local64 + "@example.com",
                  ""},
        rcpt_case{"local_part_65", "<" + local65 + "@example.com>", false, "", bad_recipient},
        rcpt_case{"path_256", "<" + mailbox_of_length(254) + ">", false, mailbox_of_length(254),
                  ""},
        rcpt_case{"path_257", "<" + mailbox_of_length(255) + ">", false, "", bad_recipient},
        rcpt_case{"missing_close", "<user@example.com", false, "", bad_recipient},
        rcpt_case{"empty", "", false, "", bad_recipient},
        rcpt_case{"utf8_with_smtputf8", "<j\xC3\xB6rg@example.com>", true,
                  "j\xC3\xB6rg@example.com", ""},
        rcpt_case{"utf8_without_smtputf8", "<j\xC3\xB6rg@example.com>", false, "", needs_utf8},
        rcpt_case{"utf8_malformed", "<j\xC3\x28@example.com>", true, "", bad_recipient}),
    [](const auto& info) { return info.param.name; });

// --- parameters --------------------------------------------------------------

struct mail_param_case {
  std::string name;
  std::string argument;
  std::string reply;  // empty: accepted with `expected`
  mail_parameters expected;
};
void PrintTo(const mail_param_case& c, std::ostream* os) {
  print_case(c, os);
}

mail_parameters with_size(std::uint64_t size) {
  mail_parameters p;
  p.size = size;
  return p;
}
mail_parameters with_body(body_type body) {
  mail_parameters p;
  p.body = body;
  return p;
}
mail_parameters with_ret(dsn_ret ret) {
  mail_parameters p;
  p.ret = ret;
  return p;
}
mail_parameters with_envid(std::string envid) {
  mail_parameters p;
  p.envid = std::move(envid);
  return p;
}
mail_parameters with_smtputf8() {
  mail_parameters p;
  p.smtputf8 = true;
  return p;
}
mail_parameters with_all() {
  mail_parameters p;
  p.size = 1234;
  p.body = body_type::eight_bit_mime;
  p.smtputf8 = true;
  p.ret = dsn_ret::headers;
  p.envid = "QQ314159";
  return p;
}

class MailFromParameters : public ::testing::TestWithParam<mail_param_case> {};

TEST_P(MailFromParameters, ParsesOrRefuses) {
  const mail_param_case& c = GetParam();
  const auto result = parse_mail_from(c.argument);
  if (!c.reply.empty()) {
    ASSERT_TRUE(std::holds_alternative<reply>(result)) << c.argument;
    EXPECT_EQ(std::get<reply>(result).wire(), c.reply);
    return;
  }
  ASSERT_TRUE(std::holds_alternative<mail_from>(result))
      << c.argument << " -> " << std::get<reply>(result).wire();
  const mail_parameters& p = std::get<mail_from>(result).params;
  EXPECT_EQ(std::get<mail_from>(result).address, "a@example.com");
  EXPECT_EQ(p.size, c.expected.size);
  EXPECT_EQ(p.body, c.expected.body);
  EXPECT_EQ(p.smtputf8, c.expected.smtputf8);
  EXPECT_EQ(p.ret, c.expected.ret);
  EXPECT_EQ(p.envid, c.expected.envid);
}

const std::string envid100(100, 'e');
const std::string envid101(101, 'e');

INSTANTIATE_TEST_SUITE_P(
    Cases, MailFromParameters,
    ::testing::Values(
        mail_param_case{"none", "<a@example.com>", "", {}},
        mail_param_case{"trailing_spaces", "<a@example.com>   ", "", {}},
        mail_param_case{"size", "<a@example.com> SIZE=1000", "", with_size(1000)},
        mail_param_case{"size_zero", "<a@example.com> size=0", "", with_size(0)},
        mail_param_case{"size_max", "<a@example.com> SIZE=18446744073709551615", "",
                        with_size(UINT64_MAX)},
        mail_param_case{"size_leading_zeros", "<a@example.com> SIZE=000042", "", with_size(42)},
        mail_param_case{"size_overflow",
                        "<a@example.com> SIZE=18446744073709551616",
                        "555 5.5.4 Bad value for parameter SIZE\r\n",
                        {}},
        mail_param_case{"size_huge",
                        "<a@example.com> SIZE=99999999999999999999999",
                        "555 5.5.4 Bad value for parameter SIZE\r\n",
                        {}},
        mail_param_case{"size_empty",
                        "<a@example.com> SIZE=",
                        "555 5.5.4 Bad value for parameter SIZE\r\n",
                        {}},
        mail_param_case{"size_no_value",
                        "<a@example.com> SIZE",
                        "555 5.5.4 Bad value for parameter SIZE\r\n",
                        {}},
        mail_param_case{"size_negative",
                        "<a@example.com> SIZE=-1",
                        "555 5.5.4 Bad value for parameter SIZE\r\n",
                        {}},
        mail_param_case{"size_letters",
                        "<a@example.com> SIZE=12k",
                        "555 5.5.4 Bad value for parameter SIZE\r\n",
                        {}},
        mail_param_case{"size_duplicate",
                        "<a@example.com> SIZE=1 size=2",
                        "555 5.5.4 Duplicate parameter SIZE\r\n",
                        {}},
        mail_param_case{"body_7bit", "<a@example.com> BODY=7BIT", "",
                        with_body(body_type::seven_bit)},
        mail_param_case{"body_8bitmime", "<a@example.com> body=8bitmime", "",
                        with_body(body_type::eight_bit_mime)},
        mail_param_case{"body_binarymime",
                        "<a@example.com> BODY=BINARYMIME",
                        "555 5.5.4 Bad value for parameter BODY\r\n",
                        {}},
        mail_param_case{"body_empty",
                        "<a@example.com> BODY=",
                        "555 5.5.4 Bad value for parameter BODY\r\n",
                        {}},
        mail_param_case{"body_duplicate",
                        "<a@example.com> BODY=7BIT BODY=7BIT",
                        "555 5.5.4 Duplicate parameter BODY\r\n",
                        {}},
        mail_param_case{"smtputf8", "<a@example.com> SMTPUTF8", "", with_smtputf8()},
        mail_param_case{"smtputf8_lower", "<a@example.com> smtputf8", "", with_smtputf8()},
        mail_param_case{"smtputf8_value",
                        "<a@example.com> SMTPUTF8=yes",
                        "555 5.5.4 Bad value for parameter SMTPUTF8\r\n",
                        {}},
        mail_param_case{"smtputf8_duplicate",
                        "<a@example.com> SMTPUTF8 SMTPUTF8",
                        "555 5.5.4 Duplicate parameter SMTPUTF8\r\n",
                        {}},
        mail_param_case{"ret_full", "<a@example.com> RET=FULL", "", with_ret(dsn_ret::full)},
        mail_param_case{"ret_hdrs", "<a@example.com> ret=hdrs", "", with_ret(dsn_ret::headers)},
        mail_param_case{"ret_other",
                        "<a@example.com> RET=BODY",
                        "555 5.5.4 Bad value for parameter RET\r\n",
                        {}},
        mail_param_case{"ret_duplicate",
                        "<a@example.com> RET=FULL RET=HDRS",
                        "555 5.5.4 Duplicate parameter RET\r\n",
                        {}},
        mail_param_case{"envid", "<a@example.com> ENVID=QQ314159", "", with_envid("QQ314159")},
        mail_param_case{"envid_hex", "<a@example.com> ENVID=a+2Bb+3d", "", with_envid("a+2Bb+3d")},
        mail_param_case{"envid_100", "<a@example.com> ENVID=" + envid100, "", with_envid(envid100)},
        mail_param_case{"envid_101",
                        "<a@example.com> ENVID=" + envid101,
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_plus_short",
                        "<a@example.com> ENVID=ab+2",
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_plus_not_hex",
                        "<a@example.com> ENVID=ab+ZZ",
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_equals",
                        "<a@example.com> ENVID=a=b",
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_control",
                        "<a@example.com> ENVID=a\x01",
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_non_ascii",
                        "<a@example.com> SMTPUTF8 ENVID=\xC3\xB6",
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_empty",
                        "<a@example.com> ENVID=",
                        "555 5.5.4 Bad value for parameter ENVID\r\n",
                        {}},
        mail_param_case{"envid_duplicate",
                        "<a@example.com> ENVID=a ENVID=b",
                        "555 5.5.4 Duplicate parameter ENVID\r\n",
                        {}},
        mail_param_case{"all",
                        "<a@example.com> SIZE=1234  BODY=8BITMIME SMTPUTF8 RET=HDRS "
                        "ENVID=QQ314159 ",
                        "", with_all()},
        mail_param_case{
            "unknown", "<a@example.com> FOO", "555 5.5.4 Unsupported parameter FOO\r\n", {}},
        mail_param_case{"unknown_with_value",
                        "<a@example.com> SIZE=1 foo=bar",
                        "555 5.5.4 Unsupported parameter FOO\r\n",
                        {}},
        mail_param_case{"rcpt_parameter_on_mail",
                        "<a@example.com> NOTIFY=NEVER",
                        "555 5.5.4 Unsupported parameter NOTIFY\r\n",
                        {}},
        // RFC 4954 §5: taken and dropped (the relay does not pass it on).
        mail_param_case{"auth_dropped", "<a@example.com> AUTH=<>", "", {}},
        mail_param_case{"auth_xtext_dropped", "<a@example.com> AUTH=a+2Bb@example.com", "", {}},
        mail_param_case{"auth_empty",
                        "<a@example.com> AUTH=",
                        "555 5.5.4 Bad value for parameter AUTH\r\n",
                        {}},
        mail_param_case{"auth_bad_xtext",
                        "<a@example.com> AUTH=a+zz",
                        "555 5.5.4 Bad value for parameter AUTH\r\n",
                        {}},
        mail_param_case{
            "keyword_bad_char", "<a@example.com> SI_ZE=1", "555 5.5.4 Malformed parameter\r\n", {}},
        mail_param_case{"keyword_leading_hyphen",
                        "<a@example.com> -SIZE=1",
                        "555 5.5.4 Malformed parameter\r\n",
                        {}},
        mail_param_case{
            "keyword_empty", "<a@example.com> =1", "555 5.5.4 Malformed parameter\r\n", {}},
        mail_param_case{
            "keyword_crlf", "<a@example.com> A\r\nRSET", "555 5.5.4 Malformed parameter\r\n", {}},
        mail_param_case{"keyword_too_long",
                        "<a@example.com> " + std::string(65, 'K'),
                        "555 5.5.4 Malformed parameter\r\n",
                        {}},
        mail_param_case{"keyword_64_echoed",
                        "<a@example.com> " + std::string(64, 'K'),
                        "555 5.5.4 Unsupported parameter " + std::string(64, 'K') + "\r\n",
                        {}}),
    [](const auto& info) { return info.param.name; });

TEST(MailFromParameters, NullSenderKeepsParameters) {
  const auto result = parse_mail_from("<> SIZE=5 RET=FULL");
  ASSERT_TRUE(std::holds_alternative<mail_from>(result));
  EXPECT_EQ(std::get<mail_from>(result).address, "");
  EXPECT_EQ(std::get<mail_from>(result).params.size, 5u);
  EXPECT_EQ(std::get<mail_from>(result).params.ret, dsn_ret::full);
}

TEST(MailFromParameters, BadAddressIsReportedBeforeBadParameter) {
  const auto result = parse_mail_from("<a@@example.com> FOO=1");
  ASSERT_TRUE(std::holds_alternative<reply>(result));
  EXPECT_EQ(std::get<reply>(result).wire(), bad_sender);
}

TEST(MailFromParameters, BadParameterIsReportedBeforeMissingSmtputf8) {
  const auto result = parse_mail_from("<j\xC3\xB6@example.com> FOO");
  ASSERT_TRUE(std::holds_alternative<reply>(result));
  EXPECT_EQ(std::get<reply>(result).wire(), "555 5.5.4 Unsupported parameter FOO\r\n");
}

struct rcpt_param_case {
  std::string name;
  std::string argument;
  bool smtputf8;
  std::string reply;  // empty: accepted
  dsn_notify notify;
  std::string orcpt;
};
void PrintTo(const rcpt_param_case& c, std::ostream* os) {
  print_case(c, os);
}

class RcptToParameters : public ::testing::TestWithParam<rcpt_param_case> {};

TEST_P(RcptToParameters, ParsesOrRefuses) {
  const rcpt_param_case& c = GetParam();
  const auto result = parse_rcpt_to(c.argument, c.smtputf8);
  if (!c.reply.empty()) {
    ASSERT_TRUE(std::holds_alternative<reply>(result)) << c.argument;
    EXPECT_EQ(std::get<reply>(result).wire(), c.reply);
    return;
  }
  ASSERT_TRUE(std::holds_alternative<rcpt_to>(result))
      << c.argument << " -> " << std::get<reply>(result).wire();
  const rcpt_parameters& p = std::get<rcpt_to>(result).params;
  EXPECT_EQ(std::get<rcpt_to>(result).address, "b@example.com");
  EXPECT_EQ(p.notify.specified, c.notify.specified);
  EXPECT_EQ(p.notify.never, c.notify.never);
  EXPECT_EQ(p.notify.success, c.notify.success);
  EXPECT_EQ(p.notify.failure, c.notify.failure);
  EXPECT_EQ(p.notify.delay, c.notify.delay);
  EXPECT_EQ(p.orcpt, c.orcpt);
}

constexpr dsn_notify no_notify{};
constexpr dsn_notify notify_never{true, true, false, false, false};
constexpr dsn_notify notify_success{true, false, true, false, false};
constexpr dsn_notify notify_all{true, false, true, true, true};
constexpr dsn_notify notify_failure_delay{true, false, false, true, true};

const std::string orcpt500 = "rfc822;" + std::string(493, 'o');
const std::string orcpt501 = "rfc822;" + std::string(494, 'o');

INSTANTIATE_TEST_SUITE_P(
    Cases, RcptToParameters,
    ::testing::Values(
        rcpt_param_case{"none", "<b@example.com>", false, "", no_notify, ""},
        rcpt_param_case{"never", "<b@example.com> NOTIFY=NEVER", false, "", notify_never, ""},
        rcpt_param_case{"success", "<b@example.com> notify=success", false, "", notify_success, ""},
        rcpt_param_case{"list", "<b@example.com> NOTIFY=SUCCESS,FAILURE,DELAY", false, "",
                        notify_all, ""},
        rcpt_param_case{"list_other_order", "<b@example.com> NOTIFY=DELAY,failure", false, "",
                        notify_failure_delay, ""},
        rcpt_param_case{"never_and_success", "<b@example.com> NOTIFY=NEVER,SUCCESS", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"success_and_never", "<b@example.com> NOTIFY=SUCCESS,NEVER", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"notify_unknown", "<b@example.com> NOTIFY=ALWAYS", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"notify_empty", "<b@example.com> NOTIFY=", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"notify_no_value", "<b@example.com> NOTIFY", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"notify_empty_item", "<b@example.com> NOTIFY=SUCCESS,,DELAY", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"notify_trailing_comma", "<b@example.com> NOTIFY=SUCCESS,", false,
                        "555 5.5.4 Bad value for parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"notify_duplicate", "<b@example.com> NOTIFY=NEVER NOTIFY=NEVER", false,
                        "555 5.5.4 Duplicate parameter NOTIFY\r\n", no_notify, ""},
        rcpt_param_case{"orcpt", "<b@example.com> ORCPT=rfc822;b@example.com", false, "", no_notify,
                        "rfc822;b@example.com"},
        rcpt_param_case{"orcpt_xtext", "<b@example.com> ORCPT=rfc822;a+2Bb+3Dc@example.com", false,
                        "", no_notify, "rfc822;a+2Bb+3Dc@example.com"},
        rcpt_param_case{"orcpt_utf8_type_ascii", "<b@example.com> ORCPT=utf-8;b@example.com", false,
                        "", no_notify, "utf-8;b@example.com"},
        rcpt_param_case{"orcpt_utf8_unitext", "<b@example.com> ORCPT=UTF-8;j\xC3\xB6@example.com",
                        true, "", no_notify, "UTF-8;j\xC3\xB6@example.com"},
        rcpt_param_case{"orcpt_utf8_unitext_without", "<b@example.com> ORCPT=utf-8;j\xC3\xB6@x",
                        false, "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_rfc822_non_ascii", "<b@example.com> ORCPT=rfc822;j\xC3\xB6@x", true,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_utf8_malformed", "<b@example.com> ORCPT=utf-8;j\xC3@x", true,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_500", "<b@example.com> ORCPT=" + orcpt500, false, "", no_notify,
                        orcpt500},
        rcpt_param_case{"orcpt_501", "<b@example.com> ORCPT=" + orcpt501, false,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_no_type", "<b@example.com> ORCPT=b@example.com", false,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_empty_type", "<b@example.com> ORCPT=;b@example.com", false,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_bad_type", "<b@example.com> ORCPT=rfc(822);b@example.com", false,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_empty_address", "<b@example.com> ORCPT=rfc822;", false,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_bad_hex", "<b@example.com> ORCPT=rfc822;a+G0@example.com", false,
                        "555 5.5.4 Bad value for parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"orcpt_duplicate", "<b@example.com> ORCPT=rfc822;a@x ORCPT=rfc822;a@x",
                        false, "555 5.5.4 Duplicate parameter ORCPT\r\n", no_notify, ""},
        rcpt_param_case{"both", "<b@example.com> NOTIFY=SUCCESS ORCPT=rfc822;x@example.com", false,
                        "", notify_success, "rfc822;x@example.com"},
        rcpt_param_case{"mail_parameter_on_rcpt", "<b@example.com> SIZE=10", false,
                        "555 5.5.4 Unsupported parameter SIZE\r\n", no_notify, ""},
        rcpt_param_case{"unknown", "<b@example.com> xfoo=1", false,
                        "555 5.5.4 Unsupported parameter XFOO\r\n", no_notify, ""},
        rcpt_param_case{"malformed", "<b@example.com> NO\xC3\xB6TIFY=NEVER", true,
                        "555 5.5.4 Malformed parameter\r\n", no_notify, ""}),
    [](const auto& info) { return info.param.name; });

// --- is_valid_mailbox, is_valid_domain, is_valid_helo --------------------------

struct validity_case {
  std::string input;
  bool ascii;  // valid with allow_utf8 false
  bool utf8;   // valid with allow_utf8 true
};
void PrintTo(const validity_case& c, std::ostream* os) {
  *os << ::testing::PrintToString(c.input);
}

class ValidMailbox : public ::testing::TestWithParam<validity_case> {};

TEST_P(ValidMailbox, Decides) {
  const validity_case& c = GetParam();
  EXPECT_EQ(is_valid_mailbox(c.input, false), c.ascii) << c.input;
  EXPECT_EQ(is_valid_mailbox(c.input, true), c.utf8) << c.input;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidMailbox,
    ::testing::Values(
        validity_case{"a@example.com", true, true},
        validity_case{"\"a b\"@example.com", true, true},
        validity_case{"a@[192.0.2.1]", true, true}, validity_case{"a@[IPv6:::1]", true, true},
        validity_case{"j\xC3\xB6rg@example.com", false, true},
        validity_case{"a@b\xC3\xBC\x63her.example", false, true},
        validity_case{"\"j\xC3\xB6\"@example.com", false, true},
        validity_case{"j\xC3\xB6\xC3@example.com", false, false}, validity_case{"", false, false},
        validity_case{"@", false, false}, validity_case{"a@", false, false},
        validity_case{"@b", false, false}, validity_case{"<a@b>", false, false},
        validity_case{"postmaster", false, false},
        validity_case{local64 + "@example.com", true, true},
        validity_case{local65 + "@example.com", false, false},
        validity_case{mailbox_of_length(254), true, true},
        validity_case{mailbox_of_length(255), false, false}, validity_case{"a@b@c", false, false},
        validity_case{"\"a\"b@example.com", false, false},
        validity_case{"a\"b\"@example.com", false, false},
        validity_case{std::string("a\0b@example.com", 15), false, false}));

class ValidDomain : public ::testing::TestWithParam<validity_case> {};

TEST_P(ValidDomain, Decides) {
  const validity_case& c = GetParam();
  EXPECT_EQ(is_valid_domain(c.input, false), c.ascii) << c.input;
  EXPECT_EQ(is_valid_domain(c.input, true), c.utf8) << c.input;
}

// 255 and 256 octets: four labels of 63 and one short label.
const std::string domain255 = std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                              std::string(63, 'c') + "." + std::string(63, 'd');
const std::string domain256 = domain255 + "e";

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidDomain,
    ::testing::Values(
        validity_case{"example.com", true, true}, validity_case{"localhost", true, true},
        validity_case{"a-b.c-d", true, true}, validity_case{"1.2.3.4", true, true},
        validity_case{"xn--bcher-kva.example", true, true},
        validity_case{"b\xC3\xBC\x63her.example", false, true},
        validity_case{"b\xFF.example", false, false}, validity_case{domain255, true, true},
        validity_case{domain256, false, false}, validity_case{std::string(63, 'x'), true, true},
        validity_case{std::string(64, 'x'), false, false}, validity_case{"", false, false},
        validity_case{".", false, false}, validity_case{"a.", false, false},
        validity_case{".a", false, false}, validity_case{"a..b", false, false},
        validity_case{"-a.b", false, false}, validity_case{"a-.b", false, false},
        validity_case{"a_b.c", false, false}, validity_case{"[1.2.3.4]", false, false},
        validity_case{"a b", false, false}));

TEST(ValidDomain, Limits) {
  ASSERT_EQ(domain255.size(), 255u);
  ASSERT_EQ(domain256.size(), 256u);
}

struct helo_case {
  std::string input;
  bool valid;
};
void PrintTo(const helo_case& c, std::ostream* os) {
  *os << ::testing::PrintToString(c.input);
}

class ValidHelo : public ::testing::TestWithParam<helo_case> {};

TEST_P(ValidHelo, Decides) {
  EXPECT_EQ(is_valid_helo(GetParam().input), GetParam().valid);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ValidHelo,
    ::testing::Values(helo_case{"client.example.com", true}, helo_case{"localhost", true},
                      helo_case{"localhost.localdomain", true}, helo_case{"my_printer", true},
                      helo_case{"[127.0.0.1]", true}, helo_case{"[IPv6:::1]", true},
                      helo_case{"b\xC3\xBC\x63her.example", false},
                      helo_case{"xn--bcher-kva.example", true}, helo_case{"<junk>!", true},
                      helo_case{std::string(255, 'h'), true},
                      helo_case{std::string(256, 'h'), false}, helo_case{"", false},
                      helo_case{"a b", false}, helo_case{"a\tb", false}, helo_case{"a\rb", false},
                      helo_case{std::string("a\0b", 3), false}, helo_case{"a\x7f", false},
                      helo_case{"a\xC3", false}, helo_case{"a\xFF", false}));

TEST(MailboxHelper, ProducesRequestedLength) {
  for (std::size_t length : {243u, 254u, 255u}) {
    const std::string m = mailbox_of_length(length);
    EXPECT_EQ(m.size(), length);
    EXPECT_EQ(is_valid_mailbox(m, false), length <= 254) << m;
  }
}

}  // namespace
}  // namespace oauth_relay::smtp

namespace oauth_relay::smtp {
namespace {

// Where the server qualifies local names itself: a dot-string alone is an
// address without its domain; anything else is judged as before.
TEST(LocalNames, BareLocalPartsOnlyWhenAsked) {
  struct row {
    std::string argument;
    std::string address;  // "" : refused
  };
  const std::vector<row> rows = {
      {"<root>", "root"},
      {"root", "root"},
      {"<first.last>", "first.last"},
      {"<www-data>", "www-data"},
      {"<@relay.example:root>", "root"},
      {"<root@localhost>", "root@localhost"},
      {"<\"root\">", ""},
      {"<.root>", ""},
      {"<root.>", ""},
      {"<ro ot>", ""},
      {"<" + std::string(65, 'a') + ">", ""},
      {"<" + std::string(64, 'a') + ">", std::string(64, 'a')},
  };
  for (const auto& r : rows) {
    const auto mail = parse_mail_from(r.argument, true);
    const auto rcpt = parse_rcpt_to(r.argument, false, true);
    if (r.address.empty()) {
      EXPECT_TRUE(std::holds_alternative<reply>(mail)) << r.argument;
      EXPECT_TRUE(std::holds_alternative<reply>(rcpt)) << r.argument;
    } else {
      ASSERT_TRUE(std::holds_alternative<mail_from>(mail)) << r.argument;
      EXPECT_EQ(std::get<mail_from>(mail).address, r.address);
      ASSERT_TRUE(std::holds_alternative<rcpt_to>(rcpt)) << r.argument;
      EXPECT_EQ(std::get<rcpt_to>(rcpt).address, r.address);
    }
  }
  const auto sized = parse_mail_from("<cron> SIZE=10", true);
  ASSERT_TRUE(std::holds_alternative<mail_from>(sized));
  EXPECT_EQ(std::get<mail_from>(sized).params.size, 10u);
  // Not asked: refused as ever (501 5.1.7, 501 5.1.3).
  EXPECT_EQ(std::get<reply>(parse_mail_from("<root>")).enhanced, "5.1.7");
  EXPECT_EQ(std::get<reply>(parse_rcpt_to("<root>", false)).enhanced, "5.1.3");
}

}  // namespace
}  // namespace oauth_relay::smtp
