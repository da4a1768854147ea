// The device authorization grant (RFC 8628) as oauth-relayctl polls it: the
// pure decision what to do after each answer of the token endpoint.
#pragma once

#include <chrono>
#include <string>

#include "auth/token_client.hpp"

namespace oauth_relay::auth {

// RFC 8628 §3.5: "slow_down" adds 5 seconds to the polling interval for
// this and all subsequent requests.
inline constexpr std::chrono::seconds slow_down_step{5};
enum class device_next {
  poll_again,  // wait `interval`, then poll again
  done,        // the answer holds the tokens
  give_up,     // stop: `why` says why
};

struct device_decision {
  device_next next = device_next::give_up;
  std::chrono::seconds interval{0};  // the wait before the next poll
  std::string why;                   // for give_up: one line
  friend bool operator==(const device_decision&, const device_decision&) = default;
};

// After one poll answered `answer` with the polling interval at `interval`:
// authorization_pending polls on at the interval, slow_down at the interval
// plus slow_down_step, a temporary failure (5xx, network) at the interval;
// expired_token, authorization_declined (access_denied) and any other
// refusal give up.
device_decision decide_device_poll(const token_response& answer, std::chrono::seconds interval);

}  // namespace oauth_relay::auth
