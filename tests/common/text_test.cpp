// one_line, escaped, rfc5322_date and base64 (RFC 4648 §10 test vectors).
#include "common/text.hpp"

#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "common/backoff.hpp"

namespace oauth_relay {
namespace {

TEST(one_line, control_characters_become_spaces) {
  EXPECT_EQ(one_line(std::string("a\r\nb\0c\x7f", 7)), "a  b c ");
  EXPECT_EQ(one_line("plain text"), "plain text");
}

TEST(one_line, long_text_is_cut_with_an_ellipsis) {
  EXPECT_EQ(one_line("abcdefgh", 5), "abcde...");
  EXPECT_EQ(one_line("abcde", 5), "abcde");
}

TEST(escaped, control_characters_and_del_become_hex_escapes) {
  EXPECT_EQ(escaped(std::string("a\r\nb\0c\x7f\x1f", 8)), "a\\x0d\\x0ab\\x00c\\x7f\\x1f");
  EXPECT_EQ(escaped("plain text"), "plain text");
  // Bytes above ASCII are not control characters: UTF-8 passes as it is.
  EXPECT_EQ(escaped("b\xc3\xbc"
                    "cher \xff"),
            "b\xc3\xbc"
            "cher \xff");
}

TEST(escaped, backslashes_the_quoting_characters_asked_for) {
  EXPECT_EQ(escaped("say \"hi\" \\o/"), "say \"hi\" \\o/");
  EXPECT_EQ(escaped("say \"hi\" \\o/", "\"\\"), "say \\\"hi\\\" \\\\o/");
  EXPECT_EQ(escaped("a\tb\"", "\""), "a\\x09b\\\"");
}

class rfc5322 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* tz = std::getenv("TZ")) saved_ = tz;
  }
  void TearDown() override {
    if (saved_) {
      ::setenv("TZ", saved_->c_str(), 1);
    } else {
      ::unsetenv("TZ");
    }
    ::tzset();
  }
  static void zone(const char* tz) {
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  std::optional<std::string> saved_;
};

TEST_F(rfc5322, utc) {
  zone("UTC0");
  EXPECT_EQ(rfc5322_date(1795320926), "Sun, 22 Nov 2026 04:15:26 +0000");
}

TEST_F(rfc5322, local_zone_east_and_west) {
  zone("CET-1");
  EXPECT_EQ(rfc5322_date(1795320926), "Sun, 22 Nov 2026 05:15:26 +0100");
  zone("NST+3:30");
  EXPECT_EQ(rfc5322_date(1795320926), "Sun, 22 Nov 2026 00:45:26 -0330");
}

struct base64_case {
  std::string plain;
  std::string encoded;
  std::string url;
};

class base64 : public ::testing::TestWithParam<base64_case> {};

TEST_P(base64, round_trips) {
  EXPECT_EQ(base64_encode(GetParam().plain), GetParam().encoded);
  EXPECT_EQ(base64_decode(GetParam().encoded), GetParam().plain);
  EXPECT_EQ(base64url_encode(GetParam().plain), GetParam().url);
  EXPECT_EQ(base64url_decode(GetParam().url), GetParam().plain);
}

INSTANTIATE_TEST_SUITE_P(
    rfc4648, base64,
    ::testing::Values(base64_case{"", "", ""}, base64_case{"f", "Zg==", "Zg"},
                      base64_case{"fo", "Zm8=", "Zm8"}, base64_case{"foo", "Zm9v", "Zm9v"},
                      base64_case{"foob", "Zm9vYg==", "Zm9vYg"},
                      base64_case{"fooba", "Zm9vYmE=", "Zm9vYmE"},
                      base64_case{"foobar", "Zm9vYmFy", "Zm9vYmFy"},
                      base64_case{std::string("\0\xff\xfe", 3), "AP/+", "AP_-"}));

TEST(base64_decode, padding_is_optional_but_must_be_right) {
  EXPECT_EQ(base64_decode("Zg"), "f");
  EXPECT_EQ(base64url_decode("Zg=="), "f");
  EXPECT_FALSE(base64_decode("Z"));
  EXPECT_FALSE(base64_decode("Zg="));
  EXPECT_FALSE(base64_decode("Z==="));
  EXPECT_FALSE(base64_decode("Zm8=="));
  EXPECT_FALSE(base64_decode("=Zg="));
}

TEST(base64_decode, refuses_what_is_not_the_alphabet) {
  EXPECT_FALSE(base64_decode("Zh=="));  // bits after the last octet
  EXPECT_FALSE(base64_decode("Zm9v\r\n"));
  EXPECT_FALSE(base64_decode("Zm 9v"));
  EXPECT_FALSE(base64_decode("AP_-"));  // base64url's alphabet
  EXPECT_FALSE(base64url_decode("AP/+"));
}

TEST(backoff, doubles_from_the_first_failure_up_to_the_cap) {
  using std::chrono::milliseconds;
  const milliseconds initial{1000}, max{5000};
  EXPECT_EQ(backoff(initial, max, 0), milliseconds(1000));
  EXPECT_EQ(backoff(initial, max, 1), milliseconds(1000));
  EXPECT_EQ(backoff(initial, max, 2), milliseconds(2000));
  EXPECT_EQ(backoff(initial, max, 3), milliseconds(4000));
  EXPECT_EQ(backoff(initial, max, 4), milliseconds(5000));
  EXPECT_EQ(backoff(initial, max, 1000), milliseconds(5000));
}

using query = std::vector<std::pair<std::string_view, std::string_view>>;

TEST(query_pairs, pairs_in_order_as_written) {
  EXPECT_EQ(query_pairs("limit=100&after=42"), (query{{"limit", "100"}, {"after", "42"}}));
  EXPECT_EQ(query_pairs("code=4%2F0A&state=x"), (query{{"code", "4%2F0A"}, {"state", "x"}}));
}

TEST(query_pairs, empty_pairs_are_skipped_and_a_bare_name_has_an_empty_value) {
  EXPECT_EQ(query_pairs(""), query{});
  EXPECT_EQ(query_pairs("&&a=1&&b&c=&=d"), (query{{"a", "1"}, {"b", ""}, {"c", ""}, {"", "d"}}));
  EXPECT_EQ(query_pairs("a=b=c"), (query{{"a", "b=c"}}));
}

}  // namespace
}  // namespace oauth_relay
