// Gmail's answers that are about the account's sending rate or daily quota,
// not about the message: one table, each entry with its source. Pure: a
// reply in, what it means for the account out (provider_answers_test.cpp).
#pragma once

#include <span>
#include <string_view>

#include "relay/smtp/reply.hpp"

namespace oauth_relay::relay {

// How an account may send now. Never a reason to fail a recipient.
enum class sending_state {
  ok,
  throttled,   // Gmail asked the relay to slow down: held with backoff, then tried again
  over_quota,  // the daily quota (Gmail's, or limits: in the config) is used up
};

std::string_view to_string(sending_state state);

struct provider_answer {
  int code;                   // the reply code, e.g. 550
  std::string_view enhanced;  // the RFC 3463 code, e.g. "5.4.5"
  // Words of Gmail's text that must appear (compared without case): the
  // enhanced code alone is shared with answers about the message.
  std::string_view text;
  sending_state state;       // what it means for the account
  std::string_view meaning;  // one line for the log and the admin
  std::string_view source;   // where Google documents it
};

// Every entry, in the order they are matched.
std::span<const provider_answer> provider_answers();

// The entry `r` matches (same code and enhanced code, the entry's words in
// its text), or nullptr: then the reply means what SMTP says it means.
const provider_answer* classify(const smtp::reply& r);

}  // namespace oauth_relay::relay
