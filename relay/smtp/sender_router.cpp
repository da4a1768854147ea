// Sender-to-account routing: patterns first, in config order, then the default.
#include "relay/smtp/sender_router.hpp"

namespace oauth_relay::relay {
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

bool sender_pattern_matches(std::string_view pattern, std::string_view address) {
  // Iterative glob with single-star backtracking: linear for the patterns admins write.
  std::size_t p = 0, a = 0, star = std::string_view::npos, resume = 0;
  while (a < address.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      resume = a;
    } else if (p < pattern.size() && lower(pattern[p]) == lower(address[a])) {
      ++p;
      ++a;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      a = ++resume;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

sender_router::sender_router(const std::vector<config::account_settings>& accounts) {
  for (const auto& account : accounts) {
    if (account.is_default) default_ = entries_.size();
    entries_.push_back({account.address, account.senders, account.permit,
                        account.service_account && account.is_domain_pattern()});
  }
}

const sender_router::account_route* sender_router::find(std::string_view sender) const {
  if (!sender.empty()) {
    for (const auto& e : entries_) {
      for (const auto& pattern : e.patterns) {
        if (sender_pattern_matches(pattern, sender)) return &e;
      }
    }
  }
  return default_ ? &entries_[*default_] : nullptr;
}

std::optional<std::string> sender_router::route(std::string_view sender) const {
  const auto* found = find(sender);
  if (!found) return std::nullopt;
  return found->account_for(std::string(sender));
}

}  // namespace oauth_relay::relay
