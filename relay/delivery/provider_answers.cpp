// The table of Gmail's quota and rate answers. A 5xx in it (550 5.4.5) would
// otherwise fail every recipient and bounce: a cron storm would turn into
// hundreds of bounces for mail Gmail takes again a few hours later.
#include "relay/delivery/provider_answers.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace oauth_relay::relay {
namespace {

// Google Workspace Admin Help, "SMTP error reference"; Gmail Help, "Gmail
// sending limits in Google Workspace" and "Limits for sending & getting mail".
constexpr std::string_view smtp_errors = "https://support.google.com/a/answer/3726730";
constexpr std::string_view sending_limits =
    "https://support.google.com/a/answer/166852 (Gmail sending limits)";

constexpr std::array answers{
    // "550, 5.4.5, Daily user sending limit exceeded." (also "Daily sending
    // quota exceeded", "Daily SMTP relay limit exceeded for user"): the
    // rolling 24-hour quota is used up; Gmail takes mail again as the
    // window moves on, "usually within 1 to 24 hours".
    provider_answer{550, "5.4.5", "daily", sending_state::over_quota,
                    "Gmail's daily sending limit for the account is used up", sending_limits},
    // "421, 4.7.0, Try again later, closing connection.": too many
    // connections or commands too fast (at the greeting or any command).
    provider_answer{421, "4.7.0", "try again later", sending_state::throttled,
                    "Gmail asks the relay to send more slowly", smtp_errors},
    // "454, 4.7.0, Too many login attempts, please try again later.": logins
    // come too fast; answered to AUTH.
    provider_answer{454, "4.7.0", "too many login attempts", sending_state::throttled,
                    "Gmail refuses logins that come too fast", smtp_errors},
    // "452, 4.5.3, Your message has too many recipients.": the recipients
    // per message or per period are over the limit; the rest go later.
    provider_answer{452, "4.5.3", "too many recipients", sending_state::throttled,
                    "Gmail takes no more recipients for now", sending_limits},
};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

}  // namespace

std::string_view to_string(sending_state state) {
  switch (state) {
    case sending_state::ok:
      return "ok";
    case sending_state::throttled:
      return "throttled";
    case sending_state::over_quota:
      return "over_quota";
  }
  return "ok";
}

std::span<const provider_answer> provider_answers() {
  return answers;
}

const provider_answer* classify(const smtp::reply& r) {
  std::string text;
  for (const auto& line : r.lines) text += lower(line) + " ";
  for (const auto& a : answers) {
    if (a.code == r.code && a.enhanced == r.enhanced && text.find(a.text) != std::string::npos)
      return &a;
  }
  return nullptr;
}

}  // namespace oauth_relay::relay
