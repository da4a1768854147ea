// A stand-in for Google's OAuth endpoints on 127.0.0.1 over real HTTPS (a test_pki
// certificate): POST /token (refresh, PKCE code exchange, service accounts' JWT
// bearer grant) and GET /auth (the consent screen, answering with the loopback redirect).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fakes/test_pki.hpp"

namespace oauth_relay::fakes {

class fake_oauth {
 public:
  static constexpr const char* default_client_id = "fake-client.apps.googleusercontent.com";
  static constexpr const char* default_client_secret = "GOCSPX-fake-client-secret";

  // Starts listening on 127.0.0.1 (an ephemeral port) with a certificate from
  // `pki` for 127.0.0.1 and localhost, served from its own thread.
  explicit fake_oauth(const test_pki& pki, std::string client_id = default_client_id,
                      std::string client_secret = default_client_secret);
  ~fake_oauth();
  fake_oauth(const fake_oauth&) = delete;
  fake_oauth& operator=(const fake_oauth&) = delete;

  std::uint16_t port() const;
  std::string token_url() const;  // https://127.0.0.1:PORT/token
  std::string auth_url() const;   // https://127.0.0.1:PORT/auth
  const std::string& client_id() const;
  const std::string& client_secret() const;

  // ---- accounts and tokens
  // `refresh_token` becomes a valid grant for `email`.
  void add_account(const std::string& email, const std::string& refresh_token);
  // The grant ends (invalid_grant from now on) and, as at Google, the access
  // tokens issued under it stop working.
  void revoke(const std::string& refresh_token);
  // Every access token issued so far stops working (as if it had expired).
  void expire_access_tokens();
  // The newest valid refresh token of `email` (changes with rotation and consent).
  std::optional<std::string> refresh_token_of(const std::string& email) const;
  // True when `access_token` was issued for `user` (case-insensitive), has
  // not expired (expires_in as it was when issued) and was not revoked.
  // Thread-safe: for the fake Gmail.
  bool token_valid(const std::string& user, const std::string& access_token) const;

  // ---- behaviour
  void set_expires_in(std::chrono::seconds);  // default 3599, as Google
  void fail_with_503(bool);
  void set_delay(std::chrono::milliseconds);  // before every answer
  void rotate_refresh_tokens(bool);           // a refresh returns a new refresh token
  void respond_malformed(bool);               // 200 with a body that is not JSON

  // ---- the consent stand-in (GET /auth)
  void set_consenting_account(const std::string& email);  // who "signs in"
  void deny_consent(bool);                                // redirect with error=access_denied
  // Google's granular consent lets the user untick scopes: the code then
  // grants only `scopes` (space-separated). Empty: what was asked for.
  void grant_only(const std::string& scopes);

  // ---- service accounts (RFC 7523 JWT bearer grant, as Google checks it)
  // Assertions with iss `client_email` and kid `key_id` are verified with
  // `public_key_pem` (RS256): the signature, aud (this token_url), iat/exp
  // (at most an hour, not expired), sub and scope. `client_id` is what
  // delegation is granted to.
  void add_service_account(const std::string& client_email, const std::string& client_id,
                           const std::string& key_id, const std::string& public_key_pem);
  // The Admin console's Domain-wide delegation: `client_id` may act for the
  // users of `domain` with `scopes` (space-separated); without it (or for
  // another scope) Google answers unauthorized_client. Empty scopes: removed.
  void delegate(const std::string& client_id, const std::string& domain, const std::string& scopes);
  std::size_t assertions_accepted() const;
  // Why the last assertion was refused ("" after an accepted one).
  std::string last_assertion_error() const;
  // The subjects (sub) of every accepted assertion, in order.
  std::vector<std::string> assertion_subjects() const;

  // ---- what happened
  std::size_t token_requests() const;    // every POST /token
  std::size_t refreshes_served() const;  // successful refresh_token grants
  // Requests read whose answer is not written yet (set_delay makes this window long).
  std::size_t requests_in_flight() const;
  std::size_t codes_exchanged() const;  // successful authorization_code grants
  // Decoded fields of the last POST /token and query of the last GET /auth.
  std::map<std::string, std::string> last_token_request() const;
  std::map<std::string, std::string> last_auth_request() const;
  // The OAuth error code of the last refused GET /auth ("" after a consent).
  std::string last_auth_error() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace oauth_relay::fakes
