// The accounts listing of `oauth-relayctl accounts`: the token store's rows
// seen through the config, as one JSON document. The control socket's GET
// /accounts and oauth-relayctl (when the daemon is stopped) build the same.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "auth/token_source.hpp"
#include "auth/token_store.hpp"
#include "config/config.hpp"

namespace oauth_relay::daemon {

// How an account may send now, as the running daemon sees it.
struct account_sending {
  std::string state = "ok";                // ok, throttled or over_quota
  std::optional<std::int64_t> resumes_at;  // unix seconds, while not ok
  std::string reason;                      // why it is held
  std::uint64_t sent_24h = 0;              // messages delivered in the last 24 hours
};

// {"accounts":[{"address", "kind", "token_state", "access_expires_in_seconds",
// "last_delivery", "last_error", "configured", "service_account", "pattern",
// "sending_state", "resumes_at", "sent_24h"}, ...]}: every configured
// account in config order (`missing` when it has no row), then rows no
// longer configured. A `valid` token past its expiry reads `expired`; a row
// without a refresh token reads `missing` unless it needs re-authorization.
// The sending fields come from `sending` (by address, without case);
// without an entry (the daemon is not running) they are null.
//
// A service account (kind "service_account", "service_account" its
// client_email) has no row: its tokens live in the daemon's memory, which
// `live` is (the token manager's status; empty when the daemon is not
// running, and the account then reads `expired`: it gets a token when
// needed). A domain pattern reads "per_mailbox", followed by each mailbox of
// it the daemon has a token entry for ("pattern" names the pattern). A
// Microsoft app_only account (kind "app_only") is read the same way.
std::string accounts_json(const std::vector<auth::account_record>& rows,
                          const std::vector<config::account_settings>& configured,
                          const std::vector<auth::account_status>& live, std::int64_t now_seconds,
                          const std::map<std::string, account_sending>& sending = {});

}  // namespace oauth_relay::daemon
