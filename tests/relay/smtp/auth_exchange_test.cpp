// SMTP AUTH's exchange as a table: the AUTH argument and the client's
// answers in, the exact replies (334 prompts, errors) and the credentials out.
#include "relay/smtp/auth_exchange.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/text.hpp"

namespace oauth_relay::relay {
namespace {

using result = auth_exchange::result;

std::string plain(std::string_view authzid, std::string_view user, std::string_view password) {
  std::string raw(authzid);
  raw += '\0';
  raw += user;
  raw += '\0';
  raw += password;
  return base64_encode(raw);
}

struct step {
  std::string line;  // the AUTH argument first, then the answers; "<too long>" for an overlong one
  result what;
  std::string wire;  // the reply's wire form; "" for verify
};

struct exchange_case {
  std::string name;
  std::vector<step> steps;
  std::string user;      // after verify
  std::string password;  // after verify
};

const std::vector<exchange_case> cases = {
    {"plain_initial_response",
     {{"PLAIN " + plain("", "scanner", "s3cret"), result::verify, ""}},
     "scanner",
     "s3cret"},
    {"plain_mechanism_any_case",
     {{"plain " + plain("", "scanner", "s3cret"), result::verify, ""}},
     "scanner",
     "s3cret"},
    {"plain_authzid_same_as_user",
     {{"PLAIN " + plain("scanner", "scanner", "pw"), result::verify, ""}},
     "scanner",
     "pw"},
    {"plain_after_empty_challenge",
     {{"PLAIN", result::challenge, "334 \r\n"}, {plain("", "u", "p"), result::verify, ""}},
     "u",
     "p"},
    {"login_two_prompts",
     {{"LOGIN", result::challenge, "334 VXNlcm5hbWU6\r\n"},
      {base64_encode("printer"), result::challenge, "334 UGFzc3dvcmQ6\r\n"},
      {base64_encode("pa ss:word"), result::verify, ""}},
     "printer",
     "pa ss:word"},
    {"login_with_initial_user",
     {{"LOGIN " + base64_encode("printer"), result::challenge, "334 UGFzc3dvcmQ6\r\n"},
      {base64_encode("pw"), result::verify, ""}},
     "printer",
     "pw"},
    {"password_of_255_octets",
     {{"PLAIN " + plain("", "u", std::string(255, 'x')), result::verify, ""}},
     "u",
     std::string(255, 'x')},
    {"unknown_mechanism",
     {{"CRAM-MD5", result::failed, "504 5.5.4 Unrecognized authentication type\r\n"}},
     "",
     ""},
    {"no_mechanism",
     {{"", result::failed, "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"}},
     "",
     ""},
    {"two_initial_responses",
     {{"PLAIN abc def", result::failed, "501 5.5.4 Syntax: AUTH mechanism [initial-response]\r\n"}},
     "",
     ""},
    {"plain_cancelled",
     {{"PLAIN", result::challenge, "334 \r\n"},
      {"*", result::failed, "501 5.0.0 Authentication cancelled\r\n"}},
     "",
     ""},
    {"login_cancelled_at_password",
     {{"LOGIN", result::challenge, "334 VXNlcm5hbWU6\r\n"},
      {base64_encode("u"), result::challenge, "334 UGFzc3dvcmQ6\r\n"},
      {"*", result::failed, "501 5.0.0 Authentication cancelled\r\n"}},
     "",
     ""},
    {"malformed_base64_initial",
     {{"PLAIN AGZvb!BiYXI=", result::failed, "501 5.5.2 Cannot decode response\r\n"}},
     "",
     ""},
    {"malformed_base64_answer",
     {{"LOGIN", result::challenge, "334 VXNlcm5hbWU6\r\n"},
      {"not base64!", result::failed, "501 5.5.2 Cannot decode response\r\n"}},
     "",
     ""},
    {"plain_without_separators",
     {{"PLAIN " + base64_encode("userpassword"), result::failed,
       "501 5.5.2 Malformed PLAIN response\r\n"}},
     "",
     ""},
    {"plain_three_separators",
     {{"PLAIN " + base64_encode(std::string("a\0b\0c\0d", 7)), result::failed,
       "501 5.5.2 Malformed PLAIN response\r\n"}},
     "",
     ""},
    {"plain_empty_password",
     {{"PLAIN " + plain("", "u", ""), result::failed, "501 5.5.2 Malformed PLAIN response\r\n"}},
     "",
     ""},
    {"plain_empty_initial_response",
     {{"PLAIN =", result::failed, "501 5.5.2 Malformed PLAIN response\r\n"}},
     "",
     ""},
    {"plain_other_authzid",
     {{"PLAIN " + plain("admin", "scanner", "pw"), result::failed,
       "535 5.7.8 Authentication credentials invalid\r\n"}},
     "",
     ""},
    {"password_over_255_octets",
     {{"PLAIN " + plain("", "u", std::string(256, 'x')), result::failed,
       "501 5.5.4 Credentials too long\r\n"}},
     "",
     ""},
    {"user_over_255_octets",
     {{"LOGIN", result::challenge, "334 VXNlcm5hbWU6\r\n"},
      {base64_encode(std::string(256, 'u')), result::failed, "501 5.5.4 Credentials too long\r\n"}},
     "",
     ""},
    {"login_user_with_nul",
     {{"LOGIN " + base64_encode(std::string("a\0b", 3)), result::failed,
       "501 5.5.2 Malformed user name\r\n"}},
     "",
     ""},
    {"overlong_answer",
     {{"LOGIN", result::challenge, "334 VXNlcm5hbWU6\r\n"},
      {"<too long>", result::failed, "500 5.5.6 Authentication exchange line is too long\r\n"}},
     "",
     ""},
};

class auth_exchange_table : public testing::TestWithParam<exchange_case> {};

TEST_P(auth_exchange_table, replies_and_credentials) {
  const auto& c = GetParam();
  auth_exchange exchange;
  for (std::size_t i = 0; i < c.steps.size(); ++i) {
    const auto& s = c.steps[i];
    const auto step = i == 0                   ? exchange.start(s.line)
                      : s.line == "<too long>" ? exchange.line_too_long()
                                               : exchange.respond(s.line);
    EXPECT_EQ(step.what, s.what) << "step " << i;
    if (s.what != result::verify) {
      EXPECT_EQ(step.reply.wire(), s.wire) << "step " << i;
    }
    EXPECT_EQ(exchange.active(), s.what != result::failed) << "step " << i;
  }
  if (c.steps.back().what == result::verify) {
    const auto given = exchange.take();
    EXPECT_EQ(given.name, c.user);
    EXPECT_EQ(given.password.value(), c.password);
  }
  EXPECT_FALSE(exchange.active());
}

INSTANTIATE_TEST_SUITE_P(cases, auth_exchange_table, testing::ValuesIn(cases),
                         [](const auto& info) { return info.param.name; });

TEST(auth_exchange, a_new_start_forgets_the_last_credentials) {
  auth_exchange exchange;
  ASSERT_EQ(exchange.start("PLAIN " + plain("", "u", "p")).what, result::verify);
  (void)exchange.take();
  ASSERT_EQ(exchange.start("LOGIN").what, result::challenge);
  ASSERT_EQ(exchange.respond("*").what, result::failed);
  const auto given = exchange.take();
  EXPECT_EQ(given.name, "");
  EXPECT_TRUE(given.password.empty());
}

TEST(secret, moving_wipes_the_source) {
  secret a("a password longer than the short-string buffer");
  secret b(std::move(a));
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): that is the point
  EXPECT_EQ(b.value(), "a password longer than the short-string buffer");
  secret c;
  c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.value(), "a password longer than the short-string buffer");
}

}  // namespace
}  // namespace oauth_relay::relay
