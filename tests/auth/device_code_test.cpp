// The device code poll's decision as a table: each answer of the token
// endpoint and the interval in, what oauth-relayctl does next out.
#include "auth/device_code.hpp"

#include <gtest/gtest.h>

namespace oauth_relay::auth {
namespace {

using std::chrono::seconds;

token_response refused(std::string code, token_failure failure = token_failure::rejected) {
  token_response r;
  r.failure = failure;
  r.http_status = 400;
  r.oauth_error = std::move(code);
  r.error = "token endpoint refused the request: " + r.oauth_error + ", HTTP 400";
  return r;
}

TEST(decide_device_poll, table) {
  token_response tokens;
  tokens.access_token = "at";
  token_response unreachable;
  unreachable.failure = token_failure::temporary;
  unreachable.error = "token endpoint unreachable: timeout";
  token_response server_error = refused("", token_failure::temporary);
  server_error.http_status = 503;

  struct row {
    token_response answer;
    seconds interval;
    device_decision expected;
  };
  const row rows[] = {
      {tokens, seconds(5), {device_next::done, seconds(5), ""}},
      {refused("authorization_pending"), seconds(5), {device_next::poll_again, seconds(5), ""}},
      {refused("authorization_pending"), seconds(1), {device_next::poll_again, seconds(1), ""}},
      // RFC 8628 §3.5: slow_down adds 5 seconds, and again on each one.
      {refused("slow_down"), seconds(5), {device_next::poll_again, seconds(10), ""}},
      {refused("slow_down"), seconds(10), {device_next::poll_again, seconds(15), ""}},
      {refused("expired_token"),
       seconds(5),
       {device_next::give_up, seconds(5),
        "the code expired before anyone signed in with it (expired_token)"}},
      {refused("authorization_declined"),
       seconds(5),
       {device_next::give_up, seconds(5), "the sign-in was declined (authorization_declined)"}},
      {refused("access_denied"),
       seconds(5),
       {device_next::give_up, seconds(5), "the sign-in was declined (access_denied)"}},
      {unreachable, seconds(5), {device_next::poll_again, seconds(5), ""}},
      {server_error, seconds(5), {device_next::poll_again, seconds(5), ""}},
      {refused("invalid_client", token_failure::invalid_client),
       seconds(5),
       {device_next::give_up, seconds(5),
        "token endpoint refused the request: invalid_client, HTTP 400"}},
      {refused("invalid_grant", token_failure::invalid_grant),
       seconds(5),
       {device_next::give_up, seconds(5),
        "token endpoint refused the request: invalid_grant, HTTP 400"}},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(decide_device_poll(r.answer, r.interval), r.expected)
        << "answer " << r.answer.oauth_error << " / " << r.answer.error;
  }
}

}  // namespace
}  // namespace oauth_relay::auth
