// The spool does the parking in one UPDATE per account over the due rows
// only, so mail parked earlier costs nothing on later passes however much
// of it waits; each parked message comes up again by itself when its delay
// warning or its expiry is due.
#include "relay/delivery/parking.hpp"

#include <chrono>

#include "auth/token_manager.hpp"  // needs_reauth_message
#include "config/log.hpp"

namespace oauth_relay::relay {

std::map<std::string, std::string> account_parking::blocked() const {
  std::map<std::string, std::string> out;
  for (const auto& status : tokens_.status()) {
    if (status.state == auth::token_state::needs_reauth) {
      // A service account's error names its fix (domain-wide delegation).
      out[status.address] = !status.service_account.empty() && !status.last_error.empty()
                                ? status.last_error
                                : auth::needs_reauth_message(status.address);
    } else if (status.state == auth::token_state::missing) {
      out[status.address] = "account " + status.address +
                            " is not authorized yet: run \"oauth-relayctl authorize " +
                            status.address + "\"";
    }
  }
  return out;
}

account_parking::verdict account_parking::sort(const queued_message& m,
                                               const delivery_policy& policy, std::int64_t now_ms) {
  // Parked mail outlives queue.lifetime like any other, and waiting on a
  // person is a delay like any other: the sender hears once.
  if (past_lifetime(m, policy, now_ms)) return verdict::expire;
  if (delay_warning_due(m, policy, now_ms)) return verdict::warn;
  return verdict::park;
}

std::string account_parking::notice_account(
    const std::string& original, const std::vector<config::account_settings>& accounts) const {
  const auto cannot_send = blocked();
  if (cannot_send.count(original) == 0) return original;
  // The original's account cannot send: a notice through it would wait and
  // expire unheard. The default account takes the null sender anyway, so it
  // carries the notice when it can.
  for (const auto& a : accounts) {
    if (a.is_default && cannot_send.count(a.address) == 0) return a.address;
  }
  return original;
}

boost::asio::awaitable<void> account_parking::park(
    const std::set<std::string>& accounts, const std::map<std::string, std::string>& blocked,
    const delivery_policy& policy, std::int64_t now_ms,
    const std::map<std::string, std::int64_t>& until) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const delivery_queue::parking_limits limits{
      duration_cast<milliseconds>(policy.lifetime).count(),
      duration_cast<milliseconds>(policy.delay_warning).count()};
  for (const auto& account : accounts) {
    const auto reason = blocked.find(account);
    const std::string why = reason == blocked.end() ? std::string() : reason->second;
    const auto held = until.find(account);
    const std::int64_t when =
        held == until.end() ? now_ms + policy.retry_max.count() : held->second;
    auto count = co_await queue_.postpone(account, when, limits, why);
    if (!count) {
      log::error("account_mail_park_failed")
          .kv("account", account)
          .kv("error", count.error().detail);
      continue;
    }
    // A held account's mail is parked again on each pass that finds some
    // due: only a first parking (or new mail) is worth a line.
    if (*count == 0) continue;
    log::warning("account_mail_waiting")
        .kv("account", account)
        .kv("messages", *count)
        .kv("reason", why);
  }
}

}  // namespace oauth_relay::relay
