// Chooses the Google account for an envelope sender: the first account with a matching
// `senders` pattern (a domain pattern's: the sender itself), else the default, else none
// (550 5.7.1).
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
  // The account a sender routes to, with who may use it.
  struct account_route {
    std::string account;
    std::vector<std::string> patterns;
    std::optional<config::permit_settings> permit;  // nothing: every client
    // A domain pattern of a service account: each sender is its own account.
    bool per_mailbox = false;

    // The account `sender` sends as through this route: the sender itself
    // for a domain pattern (XOAUTH2 as that mailbox), else `account`.
    const std::string& account_for(const std::string& sender) const {
      return per_mailbox ? sender : account;
    }
  };

  explicit sender_router(const std::vector<config::account_settings>& accounts);
  // The account for `sender` (empty = null sender, which only the default
  // takes), or nullptr. Valid as long as the router.
  const account_route* find(std::string_view sender) const;
  // Its address alone.
  std::optional<std::string> route(std::string_view sender) const;

 private:
  std::vector<account_route> entries_;
  std::optional<std::size_t> default_;
};

}  // namespace oauth_relay::relay
