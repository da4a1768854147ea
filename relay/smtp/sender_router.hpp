// Chooses the Google account for an envelope sender: the first account with a
// matching `senders` pattern, else the default account, else none (550 5.7.1).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace oauth_relay::relay {

// Case-insensitive glob where '*' matches any run of characters (also empty).
bool sender_pattern_matches(std::string_view pattern, std::string_view address);

class sender_router {
 public:
  explicit sender_router(const std::vector<config::account_settings>& accounts);
  // The account address for `sender` (empty = null sender, which only the default takes).
  std::optional<std::string> route(std::string_view sender) const;

 private:
  struct entry {
    std::string account;
    std::vector<std::string> patterns;
  };
  std::vector<entry> entries_;
  std::optional<std::string> default_;
};

}  // namespace oauth_relay::relay
