// Mail of accounts that cannot send until a person acts (never authorized,
// consent revoked): parked with one statement per account instead of being
// tried on every pass, warned about once (queue.delay_warning), and bounced
// at queue.lifetime like any other mail. A part of the delivery scheduler.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "auth/token_source.hpp"
#include "config/config.hpp"
#include "relay/delivery/decision.hpp"
#include "relay/spool/delivery_queue.hpp"

namespace oauth_relay::relay {

class account_parking {
 public:
  // `queue` and `tokens` must outlive it.
  account_parking(delivery_queue& queue, const auth::token_source& tokens)
      : queue_(queue), tokens_(tokens) {}

  // The accounts that cannot send now, each with the reason to show.
  std::map<std::string, std::string> blocked() const;

  // What a pass does with a due message of a blocked account.
  enum class verdict {
    park,    // it waits, postponed with its account's other due mail
    warn,    // its delay warning is due: one attempt is recorded, which stores it
    expire,  // past queue.lifetime: a worker bounces it, without a connection
  };
  static verdict sort(const queued_message& message, const delivery_policy& policy,
                      std::int64_t now_ms);

  // The account a notice (bounce, delay warning) about mail of `original`
  // goes out through: the original's, or when that one cannot send, the
  // default account of `accounts`, if it can.
  std::string notice_account(const std::string& original,
                             const std::vector<config::account_settings>& accounts) const;

  // Puts off the due mail of each of `accounts` by policy.retry_max (or
  // until its time in `until`: an account on hold), each message no later
  // than its expiry and its delay warning, with the account's reason in
  // `blocked` as its last error; logs what it did.
  boost::asio::awaitable<void> park(const std::set<std::string>& accounts,
                                    const std::map<std::string, std::string>& blocked,
                                    const delivery_policy& policy, std::int64_t now_ms,
                                    const std::map<std::string, std::int64_t>& until = {});

 private:
  delivery_queue& queue_;
  const auth::token_source& tokens_;
};

}  // namespace oauth_relay::relay
