// What the delivery scheduler needs of the tokens: an access token per
// account, a way to drop one the upstream refused, and each account's state.
// The token manager is the real one; unit tests put a stand-in behind it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "auth/token_state.hpp"
#include "common/secret.hpp"

namespace oauth_relay::auth {

struct token_result {
  bool ok = false;
  secret_string access_token;  // set when ok
  token_state state = token_state::missing;
  std::string error;  // why not ok: names the account and what to do; no secrets
};

// One account as the health socket and `oauth-relayctl status` show it.
struct account_status {
  std::string address;
  token_state state = token_state::missing;
  std::optional<std::int64_t> access_expires_in_seconds;  // unset without an access token
  std::optional<std::int64_t> last_delivery;              // unix seconds
  std::string last_error;
  // A Google Workspace service account's client_email (its tokens come from
  // its key, RFC 7523); empty for an account authorized by consent.
  std::string service_account;
  // When authorize or import stored its refresh token (unix seconds); unset
  // for service accounts and rows stored before the relay kept it.
  std::optional<std::int64_t> authorized_at;
  std::uint64_t refreshes_ok = 0;      // since start, for token_refreshes_total{result="ok"}
  std::uint64_t refreshes_failed = 0;  // since start, for token_refreshes_total{result="error"}
};

class token_source {
 public:
  virtual ~token_source() = default;

  // A usable access token for `account`, refreshed first when there is none
  // or it is about to expire; ok=false (with the reason) when the account
  // cannot send now. Completes on the caller's executor.
  virtual boost::asio::awaitable<token_result> get_token(std::string account) = 0;

  // The upstream refused `access_token` (535 after the XOAUTH2 exchange):
  // forget it so the next get_token refreshes. A token already replaced is ignored.
  virtual void invalidate(const std::string& account, const std::string& access_token) = 0;

  // A message went out through `account` at `when` (unix seconds).
  virtual void record_delivery(const std::string& account, std::int64_t when) = 0;

  // Every configured account, as it stands now.
  virtual std::vector<account_status> status() const = 0;
};

}  // namespace oauth_relay::auth
