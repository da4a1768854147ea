// Table tests for the upstream reply parser (framing, codes, enhanced status,
// limits, feeding in pieces), EHLO capabilities and XOAUTH2 framing.
#include "relay/delivery/upstream_reply.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace oauth_relay::smtp {
namespace {

// --- parse_reply ------------------------------------------------------------

struct reply_case {
  const char* name;
  std::string input;
  int code;
  std::string enhanced;
  std::vector<std::string> lines;
};
void PrintTo(const reply_case& c, std::ostream* os) {
  *os << c.name << " " << ::testing::PrintToString(c.input);
}

class ParseReply : public ::testing::TestWithParam<reply_case> {};

TEST_P(ParseReply, ParsesWholeAndBytewise) {
  const reply_case& c = GetParam();
  const auto result = parse_reply(c.input);
  ASSERT_TRUE(std::holds_alternative<reply>(result)) << std::get<reply_error>(result).message;
  const reply& r = std::get<reply>(result);
  EXPECT_EQ(r.code, c.code);
  EXPECT_EQ(r.enhanced, c.enhanced);
  EXPECT_EQ(r.lines, c.lines);

  // Fed one octet at a time, the same reply comes out at the last octet.
  reply_parser parser;
  for (std::size_t i = 0; i < c.input.size(); ++i) {
    const auto step = parser.feed(std::string_view(c.input).substr(i, 1));
    ASSERT_EQ(step.consumed, 1u) << "octet " << i;
    const auto expected =
        i + 1 == c.input.size() ? reply_parser::status::complete : reply_parser::status::incomplete;
    ASSERT_EQ(step.state, expected) << "octet " << i;
  }
  const reply again = parser.take();
  EXPECT_EQ(again.code, c.code);
  EXPECT_EQ(again.enhanced, c.enhanced);
  EXPECT_EQ(again.lines, c.lines);
}

const std::string line_4096 = "250 " + std::string(4092, 'x') + "\r\n";

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseReply,
    ::testing::Values(
        reply_case{
            "plain", "220 smtp.gmail.com ESMTP fake\r\n", 220, "", {"smtp.gmail.com ESMTP fake"}},
        reply_case{"enhanced", "250 2.1.0 OK fake - gsmtp\r\n", 250, "2.1.0", {"OK fake - gsmtp"}},
        reply_case{"bare_lf", "250 2.1.5 OK\n", 250, "2.1.5", {"OK"}},
        reply_case{"code_only", "354\r\n", 354, "", {""}},
        reply_case{"code_and_space", "250 \r\n", 250, "", {""}},
        reply_case{"empty_continuation", "250-\r\n250 last\r\n", 250, "", {"", "last"}},
        reply_case{"enhanced_only", "250 2.0.0\r\n", 250, "2.0.0", {""}},
        reply_case{"enhanced_long_parts", "550 5.100.999 odd\r\n", 550, "5.100.999", {"odd"}},
        reply_case{
            "enhanced_four_digits_is_text", "550 5.1000.1 odd\r\n", 550, "", {"5.1000.1 odd"}},
        reply_case{"enhanced_wrong_class_is_text", "250 5.1.1 odd\r\n", 250, "", {"5.1.1 odd"}},
        reply_case{"enhanced_glued_is_text", "250 2.0.0x\r\n", 250, "", {"2.0.0x"}},
        reply_case{"enhanced_two_parts_is_text", "250 2.0 x\r\n", 250, "", {"2.0 x"}},
        reply_case{
            "enhanced_not_on_every_line", "250-2.0.0 a\r\n250 b\r\n", 250, "2.0.0", {"a", "b"}},
        reply_case{"enhanced_later_line_differs",
                   "250-2.0.0 a\r\n250 2.1.0 b\r\n",
                   250,
                   "2.0.0",
                   {"a", "2.1.0 b"}},
        reply_case{"ehlo",
                   "250-smtp.gmail.com at your service\r\n250-SIZE 35882577\r\n"
                   "250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n"
                   "250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n",
                   250,
                   "",
                   {"smtp.gmail.com at your service", "SIZE 35882577", "8BITMIME", "STARTTLS",
                    "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"}},
        reply_case{"gmail_535",
                   "535-5.7.8 Username and Password not accepted. For more information, go "
                   "to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials fake - "
                   "gsmtp\r\n",
                   535,
                   "5.7.8",
                   {"Username and Password not accepted. For more information, go to",
                    " https://support.google.com/mail/?p=BadCredentials fake - gsmtp"}},
        reply_case{
            "gmail_334", "334 eyJzdGF0dXMiOiI0MDAifQ==\r\n", 334, "", {"eyJzdGF0dXMiOiI0MDAifQ=="}},
        reply_case{"bare_cr_becomes_space", "250 a\rb\r\r\n", 250, "", {"a b "}},
        reply_case{"cr_cannot_hide_enhanced", "250 2.0.0\rx\r\n", 250, "2.0.0", {"x"}},
        reply_case{"eight_bit_text", "250 caf\xc3\xa9\r\n", 250, "", {"caf\xc3\xa9"}},
        reply_case{"longest_line", line_4096, 250, "", {std::string(4092, 'x')}},
        reply_case{"limits_of_range", "599 x\r\n", 599, "", {"x"}}),
    [](const auto& info) { return std::string(info.param.name); });

struct error_case {
  const char* name;
  std::string input;
  std::string message;  // a substring of the error
};
void PrintTo(const error_case& c, std::ostream* os) {
  *os << c.name << " " << ::testing::PrintToString(c.input);
}

class ParseReplyError : public ::testing::TestWithParam<error_case> {};

TEST_P(ParseReplyError, IsAnErrorValue) {
  const error_case& c = GetParam();
  const auto result = parse_reply(c.input);
  ASSERT_TRUE(std::holds_alternative<reply_error>(result));
  EXPECT_NE(std::get<reply_error>(result).message.find(c.message), std::string::npos)
      << std::get<reply_error>(result).message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseReplyError,
    ::testing::Values(
        error_case{"letters", "abc def\r\n", "three-digit code"},
        error_case{"letter_in_code", "25O OK\r\n", "three-digit code"},
        error_case{"short_code", "25\r\n", "three-digit code"},
        error_case{"empty_line", "\r\n", "three-digit code"},
        error_case{"leading_space", " 250 OK\r\n", "three-digit code"},
        error_case{"code_1xx", "150 x\r\n", "out of range"},
        error_case{"code_6xx", "600 x\r\n", "out of range"},
        error_case{"code_0xx", "050 x\r\n", "out of range"},
        error_case{"four_digits", "2500 x\r\n", "not followed by a space or '-'"},
        error_case{"tab_separator", "250\tx\r\n", "not followed by a space or '-'"},
        error_case{"mixed_codes", "250-a\r\n251 b\r\n", "different codes (250 then 251)"},
        error_case{"mixed_codes_later", "250-a\r\n250-b\r\n550 c\r\n", "different codes"},
        error_case{"line_too_long", "250 " + std::string(4093, 'x') + "\r\n",
                   "longer than 4096 octets"},
        error_case{"partial_line_too_long", "250 " + std::string(5000, 'x'),
                   "longer than 4096 octets"},
        error_case{"reply_too_long",
                   [] {
                     std::string s;
                     for (int i = 0; i < 100; ++i) s += "250-" + std::string(1000, 'y') + "\r\n";
                     return s + "250 end\r\n";
                   }(),
                   "reply longer than 65536 octets"},
        error_case{"incomplete", "250-first\r\n250 last", "incomplete"},
        error_case{"trailing_bytes", "250 a\r\n250 b\r\n", "after the end"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ReplyParser, StopsAtTheEndOfEachPipelinedReply) {
  const std::string input = "250 2.1.0 OK\r\n550-5.1.1 no\r\n550 5.1.1 such\r\n354 Go ahead\r\n";
  reply_parser parser;
  std::string_view rest = input;
  std::vector<reply> replies;
  while (!rest.empty()) {
    const auto step = parser.feed(rest);
    ASSERT_EQ(step.state, reply_parser::status::complete);
    rest.remove_prefix(step.consumed);
    replies.push_back(parser.take());
  }
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[0].wire(), "250 2.1.0 OK\r\n");
  EXPECT_EQ(replies[1].wire(), "550-5.1.1 no\r\n550 5.1.1 such\r\n");
  EXPECT_EQ(replies[2].wire(), "354 Go ahead\r\n");
}

TEST(ReplyParser, LineSplitAcrossFeedsAndCrLfSplit) {
  reply_parser parser;
  auto step = parser.feed("250-smtp.gm");
  EXPECT_EQ(step.consumed, 11u);
  EXPECT_EQ(step.state, reply_parser::status::incomplete);
  step = parser.feed("ail.com\r");
  EXPECT_EQ(step.state, reply_parser::status::incomplete);
  step = parser.feed("\n250 PIPELINING\r\nEXTRA");
  EXPECT_EQ(step.state, reply_parser::status::complete);
  EXPECT_EQ(step.consumed, 17u);  // "EXTRA" is left for the next reply
  const reply r = parser.take();
  EXPECT_EQ(r.lines, (std::vector<std::string>{"smtp.gmail.com", "PIPELINING"}));
}

TEST(ReplyParser, ErrorIsStickyUntilReset) {
  reply_parser parser;
  EXPECT_EQ(parser.feed("xyz\r\n").state, reply_parser::status::error);
  const auto step = parser.feed("250 OK\r\n");
  EXPECT_EQ(step.state, reply_parser::status::error);
  EXPECT_EQ(step.consumed, 0u);
  parser.reset();
  EXPECT_EQ(parser.feed("250 OK\r\n").state, reply_parser::status::complete);
  EXPECT_EQ(parser.take().code, 250);
}

TEST(ReplyParser, CompleteReplyWaitsForTake) {
  reply_parser parser;
  EXPECT_EQ(parser.feed("250 a\r\n250 b\r\n").consumed, 7u);
  const auto step = parser.feed("250 b\r\n");
  EXPECT_EQ(step.state, reply_parser::status::complete);
  EXPECT_EQ(step.consumed, 0u);
  EXPECT_EQ(parser.take().lines.front(), "a");
  EXPECT_EQ(parser.feed("250 b\r\n").consumed, 7u);
  EXPECT_EQ(parser.take().lines.front(), "b");
}

TEST(ReplyParser, WireOfAParsedReplyParsesToItself) {
  for (const char* input : {"250-2.0.0 a\r\n250 b\r\n", "535-5.7.8 x\r\n535 5.7.8  y\r\n",
                            "250-smtp\r\n250-SIZE 1\r\n250 DSN\r\n", "354\r\n"}) {
    const reply r = std::get<reply>(parse_reply(input));
    const reply again = std::get<reply>(parse_reply(r.wire()));
    EXPECT_EQ(again.code, r.code) << input;
    EXPECT_EQ(again.enhanced, r.enhanced) << input;
    EXPECT_EQ(again.lines, r.lines) << input;
  }
}

// --- enhanced_code_length ------------------------------------------------------

TEST(EnhancedCode, Lengths) {
  EXPECT_EQ(enhanced_code_length("2.0.0", 2), 5u);
  EXPECT_EQ(enhanced_code_length("2.0.0 OK", 2), 5u);
  EXPECT_EQ(enhanced_code_length("5.123.456 x", 5), 9u);
  EXPECT_EQ(enhanced_code_length("4.4.2", 4), 5u);
  EXPECT_EQ(enhanced_code_length("2.0.0", 5), 0u);
  EXPECT_EQ(enhanced_code_length("3.0.0", 3), 0u);  // RFC 3463: classes 2, 4, 5 only
  EXPECT_EQ(enhanced_code_length("2..0", 2), 0u);
  EXPECT_EQ(enhanced_code_length("2.0.", 2), 0u);
  EXPECT_EQ(enhanced_code_length("2.0.0.0", 2), 0u);
  EXPECT_EQ(enhanced_code_length("2.0.0,", 2), 0u);
  EXPECT_EQ(enhanced_code_length("", 2), 0u);
}

// --- parse_ehlo ----------------------------------------------------------------

struct ehlo_case {
  const char* name;
  std::vector<std::string> lines;
  ehlo_capabilities expected;
};
void PrintTo(const ehlo_case& c, std::ostream* os) {
  *os << c.name;
}

ehlo_capabilities caps(auto... setters) {
  ehlo_capabilities c;
  (setters(c), ...);
  return c;
}

class ParseEhlo : public ::testing::TestWithParam<ehlo_case> {};

TEST_P(ParseEhlo, Capabilities) {
  const ehlo_case& c = GetParam();
  const ehlo_capabilities got = parse_ehlo(reply{250, "", c.lines});
  const ehlo_capabilities& want = c.expected;
  EXPECT_EQ(got.domain, want.domain);
  EXPECT_EQ(got.pipelining, want.pipelining);
  EXPECT_EQ(got.starttls, want.starttls);
  EXPECT_EQ(got.size, want.size);
  EXPECT_EQ(got.size_limit, want.size_limit);
  EXPECT_EQ(got.eight_bit_mime, want.eight_bit_mime);
  EXPECT_EQ(got.smtputf8, want.smtputf8);
  EXPECT_EQ(got.enhanced_status_codes, want.enhanced_status_codes);
  EXPECT_EQ(got.dsn, want.dsn);
  EXPECT_EQ(got.chunking, want.chunking);
  EXPECT_EQ(got.auth_mechanisms, want.auth_mechanisms);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ParseEhlo,
    ::testing::Values(
        ehlo_case{"gmail_before_tls",
                  {"smtp.gmail.com at your service", "SIZE 35882577", "8BITMIME", "STARTTLS",
                   "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"},
                  caps([](auto& c) {
                    c.domain = "smtp.gmail.com";
                    c.size = true;
                    c.size_limit = 35882577;
                    c.eight_bit_mime = c.starttls = c.enhanced_status_codes = true;
                    c.pipelining = c.chunking = c.smtputf8 = true;
                  })},
        ehlo_case{"gmail_after_tls",
                  {"smtp.gmail.com at your service", "SIZE 35882577", "8BITMIME",
                   "AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
                   "ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"},
                  caps([](auto& c) {
                    c.domain = "smtp.gmail.com";
                    c.size = true;
                    c.size_limit = 35882577;
                    c.eight_bit_mime = c.enhanced_status_codes = true;
                    c.pipelining = c.chunking = c.smtputf8 = true;
                    c.auth_mechanisms = {"LOGIN",       "PLAIN", "XOAUTH2", "PLAIN-CLIENTTOKEN",
                                         "OAUTHBEARER", "XOAUTH"};
                  })},
        ehlo_case{"lower_case_and_dsn",
                  {"mx.example", "pipelining", "dsn", "starttls", "auth xoauth2 plain"},
                  caps([](auto& c) {
                    c.domain = "mx.example";
                    c.pipelining = c.dsn = c.starttls = true;
                    c.auth_mechanisms = {"XOAUTH2", "PLAIN"};
                  })},
        ehlo_case{"old_auth_equals_form_merged",
                  {"mx", "AUTH=LOGIN PLAIN", "AUTH PLAIN XOAUTH2"},
                  caps([](auto& c) {
                    c.domain = "mx";
                    c.auth_mechanisms = {"LOGIN", "PLAIN", "XOAUTH2"};
                  })},
        ehlo_case{"size_without_limit", {"mx", "SIZE"}, caps([](auto& c) {
                    c.domain = "mx";
                    c.size = true;
                  })},
        ehlo_case{"size_garbage_means_no_limit", {"mx", "SIZE 12x"}, caps([](auto& c) {
                    c.domain = "mx";
                    c.size = true;
                  })},
        ehlo_case{"size_overflow_means_no_limit",
                  {"mx", "SIZE 99999999999999999999999"},
                  caps([](auto& c) {
                    c.domain = "mx";
                    c.size = true;
                  })},
        ehlo_case{"keywords_only_after_first_line", {"STARTTLS PIPELINING"}, caps([](auto& c) {
                    c.domain = "STARTTLS";
                  })},
        ehlo_case{"unknown_and_prefixes_ignored",
                  {"mx", "STARTTLSX", "X-PIPELINING", "8BITMIMEX", "AUTH"},
                  caps([](auto& c) { c.domain = "mx"; })}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(ParseEhlo, OffersAuthIsCaseInsensitive) {
  const auto c = parse_ehlo(reply{250, "", {"mx", "AUTH PLAIN xoauth2"}});
  EXPECT_TRUE(c.offers_auth("XOAUTH2"));
  EXPECT_TRUE(c.offers_auth("xoauth2"));
  EXPECT_FALSE(c.offers_auth("XOAUTH"));
  EXPECT_FALSE(c.offers_auth("LOGIN"));
}

// --- XOAUTH2 (base64 itself: tests/common/text_test.cpp) ---------------------------

TEST(Xoauth2, GooglesDocumentedExample) {
  // https://developers.google.com/gmail/imap/xoauth2-protocol
  EXPECT_EQ(xoauth2_initial_response("someuser@example.com",
                                     "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"),
            "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbG"
            "NrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==");
}

}  // namespace
}  // namespace oauth_relay::smtp
