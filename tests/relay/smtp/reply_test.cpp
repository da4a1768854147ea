// Tests for the wire form of SMTP replies: continuation lines, enhanced codes,
// and that reply text can never break the CRLF framing.
#include "relay/smtp/reply.hpp"

#include <gtest/gtest.h>

namespace oauth_relay::smtp {
namespace {

struct wire_case {
  const char* name;
  reply value;
  const char* wire;
};

class ReplyWire : public ::testing::TestWithParam<wire_case> {};

TEST_P(ReplyWire, WritesExactBytes) {
  const wire_case& c = GetParam();
  EXPECT_EQ(c.value.wire(), c.wire);
  std::string out = "prefix";
  c.value.append_to(out);
  EXPECT_EQ(out, std::string("prefix") + c.wire);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReplyWire,
    ::testing::Values(
        wire_case{"one_line_enhanced", {250, "2.1.0", {"Sender OK"}}, "250 2.1.0 Sender OK\r\n"},
        wire_case{"one_line_plain", {220, "", {"relay ESMTP"}}, "220 relay ESMTP\r\n"},
        wire_case{"multi_line_enhanced",
                  {250, "2.0.0", {"first", "second", "last"}},
                  "250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n"},
        wire_case{"multi_line_plain",
                  {250, "", {"relay", "PIPELINING", "SIZE 1000"}},
                  "250-relay\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"},
        wire_case{"empty_text_enhanced", {250, "2.0.0", {""}}, "250 2.0.0\r\n"},
        wire_case{"empty_text_plain", {354, "", {""}}, "354\r\n"},
        wire_case{"no_lines", {221, "2.0.0", {}}, "221 2.0.0\r\n"},
        wire_case{"crlf_in_text_becomes_spaces",
                  {550, "5.1.1", {"a\r\nMAIL FROM:<x>\rb\nc"}},
                  "550 5.1.1 a  MAIL FROM:<x> b c\r\n"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(MakeReply, BuildsOneLine) {
  const reply r = make_reply(451, "4.3.0", "Try again later");
  EXPECT_EQ(r.code, 451);
  EXPECT_EQ(r.enhanced, "4.3.0");
  ASSERT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(r.lines[0], "Try again later");
  EXPECT_EQ(r.wire(), "451 4.3.0 Try again later\r\n");
}

struct line_case {
  const char* name;
  reply value;
  std::string line;
};

class ReplyLine : public ::testing::TestWithParam<line_case> {};

TEST_P(ReplyLine, IsOnePrintableLine) {
  EXPECT_EQ(to_line(GetParam().value), GetParam().line);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReplyLine,
    ::testing::Values(line_case{"enhanced", {250, "2.1.0", {"Sender OK"}}, "250 2.1.0 Sender OK"},
                      line_case{"plain", {220, "", {"relay ESMTP"}}, "220 relay ESMTP"},
                      line_case{"continuations_joined",
                                {550, "5.1.1", {"no such user", "see https://support.example"}},
                                "550 5.1.1 no such user / see https://support.example"},
                      line_case{"no_lines", {221, "2.0.0", {}}, "221 2.0.0"},
                      line_case{"control_characters_become_spaces",
                                {451, "4.3.0", {std::string("a\r\nb\0c\x7f", 7)}},
                                "451 4.3.0 a  b c "},
                      line_case{"long_text_is_cut",
                                {250, "", {std::string(600, 'x')}},
                                "250 " + std::string(508, 'x') + "..."}),
    [](const auto& info) { return std::string(info.param.name); });

struct class_case {
  int code;
  bool positive;
  bool transient;
  bool permanent;
};

class ReplyClass : public ::testing::TestWithParam<class_case> {};

TEST_P(ReplyClass, ClassifiesByCode) {
  const class_case& c = GetParam();
  const reply r = make_reply(c.code, "", "x");
  EXPECT_EQ(r.positive(), c.positive) << c.code;
  EXPECT_EQ(r.transient(), c.transient) << c.code;
  EXPECT_EQ(r.permanent(), c.permanent) << c.code;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ReplyClass,
    ::testing::Values(class_case{199, false, false, false}, class_case{220, true, false, false},
                      class_case{250, true, false, false}, class_case{354, true, false, false},
                      class_case{399, true, false, false}, class_case{421, false, true, false},
                      class_case{499, false, true, false}, class_case{500, false, false, true},
                      class_case{554, false, false, true}));

}  // namespace
}  // namespace oauth_relay::smtp
