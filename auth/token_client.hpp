// Google's token endpoint: refreshing an access token and exchanging an
// authorization code, with every answer classified into what to do next.
#pragma once

#include <atomic>
#include <chrono>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/http_client.hpp"
#include "common/secret.hpp"
#include "config/config.hpp"
#include "config/provider.hpp"

namespace oauth_relay::auth {

// What a failed request means for the account.
enum class token_failure {
  none,
  invalid_grant,   // the refresh token (or code) is dead: re-authorize; permanent for this token
  invalid_client,  // wrong oauth.client_id or client secret: permanent until the config changes
  not_delegated,   // a service account may not act for the mailbox (unauthorized_client,
                   // access_denied): domain-wide delegation is missing in the Admin console
  rejected,        // another OAuth refusal (invalid_scope, redirect_uri_mismatch, ...)
  temporary,       // 5xx, 429, timeout, connection or TLS failure, malformed answer: retry later
};

std::string_view to_string(token_failure);

struct token_response {
  token_failure failure = token_failure::none;
  long http_status = 0;           // 0 when no HTTP exchange happened
  std::string oauth_error;        // the endpoint's "error" code, when it sent one
  std::string oauth_description;  // its "error_description", one line, secrets redacted
  std::string error;              // one line for logs and status; never contains a secret

  // Set on success. All but `scope`, `email` and `expires_in` are secrets.
  secret_string access_token;
  std::chrono::seconds expires_in{0};
  secret_string refresh_token;  // a new refresh token when the endpoint rotated (or issued) one
  secret_string id_token;
  std::string scope;
  // The id_token's "email" claim, only when the id_token is addressed to
  // oauth.client_id and Google verified the address (see identity_error).
  std::string email;
  // Why an id_token that came was not taken as naming the account (issued
  // for another client, address not verified, unreadable); empty otherwise.
  std::string identity_error;

  bool ok() const { return failure == token_failure::none; }
};

// RFC 8628 §3.2: without an "interval" in the answer, 5 seconds.
inline constexpr std::chrono::seconds default_device_interval{5};

// What the device authorization endpoint answered (RFC 8628 §3.2); on a
// refusal, `failure` says why (classified as a token endpoint's answer).
struct device_authorization {
  token_response failure;
  secret_string device_code;  // what the tokens are polled with
  std::string user_code;
  std::string verification_uri;
  std::chrono::seconds expires_in{0};
  std::chrono::seconds interval = default_device_interval;
  std::string message;  // the endpoint's own instructions, if any

  bool ok() const { return failure.ok(); }
};

class token_client {
 public:
  // Google's token endpoint as `oauth` configures it.
  token_client(std::shared_ptr<http_client> http, config::oauth_settings oauth,
               std::chrono::milliseconds connect_timeout = default_connect_timeout,
               std::chrono::milliseconds total_timeout = default_total_timeout);
  // The token endpoint of `provider`, with its scopes.
  token_client(std::shared_ptr<http_client> http, config::provider provider,
               std::chrono::milliseconds connect_timeout = default_connect_timeout,
               std::chrono::milliseconds total_timeout = default_total_timeout);

  // grant_type=refresh_token. Blocks for up to the total timeout; `cancel`
  // abandons the request early.
  token_response refresh(const std::string& refresh_token,
                         const std::atomic<bool>* cancel = nullptr) const;

  // grant_type=client_credentials (RFC 6749 §4.4) with the provider's
  // app-only scope: an application's own token, no refresh token.
  token_response client_credentials(const std::atomic<bool>* cancel = nullptr) const;

  // grant_type=authorization_code with the PKCE verifier (oauth-relayctl
  // authorize). Succeeds only with a refresh token and an id_token that names
  // the consenting account in `email`.
  token_response exchange_code(const std::string& code, const std::string& code_verifier,
                               const std::string& redirect_uri) const;

  // The device authorization request (RFC 8628 §3.1) to the provider's
  // device_code_url with its consent scope.
  device_authorization start_device_authorization() const;
  // One poll of the token endpoint (RFC 8628 §3.4); authorization_pending and
  // slow_down come back as refusals (see auth/device_code.hpp). Succeeds only
  // as exchange_code does: with a refresh token and an id_token naming the account.
  token_response poll_device(const std::string& device_code) const;

  // grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer (RFC 7523 §2.1):
  // a service account's signed assertion, posted to the key file's
  // `token_uri` (oauth.ca_file and the timeouts apply as to oauth.token_url).
  token_response jwt_bearer(const std::string& assertion, const std::string& token_uri,
                            const std::atomic<bool>* cancel = nullptr) const;

  const config::oauth_settings& oauth() const { return provider_.oauth; }
  const config::provider& provider() const { return provider_; }

 private:
  std::shared_ptr<http_client> http_;
  config::provider provider_;
  http_options options_;
};

// What the relay reads of an id_token's payload (OpenID Connect Core §2).
struct id_token_claims {
  std::string email;
  std::string preferred_username;      // Microsoft's: the account's sign-in name
  bool email_verified = false;         // true only for the JSON true (or Google's "true")
  std::vector<std::string> audiences;  // "aud": a string or an array of strings
};

// The claims of a JWT's payload, without checking its signature; nothing
// when it is not a JWT with a JSON object for a payload.
std::optional<id_token_claims> read_id_token(std::string_view id_token);

// The "email" claim of a JWT's payload, without checking its signature.
std::optional<std::string> id_token_email(std::string_view id_token);

// `text` with every occurrence of each non-empty secret replaced by ********.
std::string redact(std::string text, std::initializer_list<std::string_view> secrets);

}  // namespace oauth_relay::auth
