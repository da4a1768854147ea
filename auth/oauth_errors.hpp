// What Google (its OAuth endpoints, smtp.gmail.com, the network in between)
// answered, turned into one line saying what happened and one saying what to do.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "auth/token_client.hpp"
#include "config/config.hpp"

namespace oauth_relay::auth {

struct advice {
  std::string cause;  // one line: what happened
  std::string fix;    // one line: what to do about it
};

// Which request an OAuth error answered.
enum class oauth_step {
  consent,        // the redirect back from the consent screen (RFC 6749 §4.1.2.1)
  code_exchange,  // POST token, grant_type=authorization_code
  refresh,        // POST token, grant_type=refresh_token
};

// An OAuth error code (RFC 6749 §4.1.2.1, §5.2, and Google's own such as
// org_internal) for `account`. Unknown codes get a generic answer naming them.
advice explain_oauth_error(std::string_view error, std::string_view description, oauth_step step,
                           std::string_view account);

// Google refused `account`'s refresh token (invalid_grant), told apart by how
// long ago it was authorized (`authorized_at`, unix seconds): from about 7 days
// on, the consent screen's Testing status (its refresh tokens expire after 7
// days) comes first; sooner, it was revoked. Unknown (nothing keeps the time
// yet): both, Testing's fix first, as explain_oauth_error says it.
advice explain_refresh_refusal(std::string_view account, std::optional<std::int64_t> authorized_at,
                               std::int64_t now);

// Where a connection went, in the words of the config.
struct endpoint {
  std::string host;  // without brackets
  std::uint16_t port = 0;
  std::string address_keys;  // the config keys that name it, e.g. "upstream.host and upstream.port"
  std::string ca_key;        // the config key of its extra trust anchors, e.g. "upstream.ca_file"
  std::optional<std::filesystem::path> ca_file;
};

endpoint upstream_endpoint(const config::upstream_settings& upstream);
// The host and port of oauth.token_url (443 unless the URL names one).
endpoint token_endpoint(const config::oauth_settings& oauth);

// A connection that failed before any answer: TLS verification, connection
// refused, timeout, name resolution, or anything else (`detail` is the
// transport's own text, e.g. curl's or the upstream client's).
advice explain_transport_failure(const endpoint& where, std::string_view detail);

// A failed token endpoint request (transport, OAuth error, HTTP error, or an
// answer that lacks what was asked for).
advice explain_token_failure(const token_response& response, oauth_step step,
                             std::string_view account, const config::oauth_settings& oauth);

// A failed JWT bearer request of a service account (`key`) for `mailbox`:
// delegation not granted (unauthorized_client, access_denied) names the
// Admin console's Domain-wide delegation page, the key's client ID and the
// scope; invalid_scope, an unknown mailbox, a revoked key and a wrong clock
// each get their own; the transport and HTTP failures as for the refresh.
advice explain_service_account_failure(const token_response& response, std::string_view mailbox,
                                       const config::service_account_key& key,
                                       const config::oauth_settings& oauth);

// The upstream refused AUTH XOAUTH2 with this reply (`text`: its first line).
advice explain_smtp_auth_refusal(int code, std::string_view enhanced, std::string_view text,
                                 std::string_view account, std::string_view host);

}  // namespace oauth_relay::auth
