// The device code poll's decision (RFC 8628 §3.5): no I/O, one answer in,
// what to do next out.
#include "auth/device_code.hpp"

namespace oauth_relay::auth {

device_decision decide_device_poll(const token_response& answer, std::chrono::seconds interval) {
  if (answer.ok()) return {device_next::done, interval, {}};
  const std::string& code = answer.oauth_error;
  if (code == "authorization_pending") return {device_next::poll_again, interval, {}};
  if (code == "slow_down") return {device_next::poll_again, interval + slow_down_step, {}};
  if (code == "expired_token") {
    return {device_next::give_up, interval,
            "the code expired before anyone signed in with it (expired_token)"};
  }
  if (code == "authorization_declined" || code == "access_denied") {
    return {device_next::give_up, interval, "the sign-in was declined (" + code + ")"};
  }
  if (answer.failure == token_failure::temporary) {
    return {device_next::poll_again, interval, {}};
  }
  return {device_next::give_up, interval, answer.error};
}

}  // namespace oauth_relay::auth
