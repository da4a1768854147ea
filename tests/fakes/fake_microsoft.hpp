// A stand-in for the Microsoft identity platform (v2.0) on 127.0.0.1 over real
// HTTPS (a test_pki certificate): /{tenant}/oauth2/v2.0/token (refresh with
// rotation, client credentials, device code, authorization code with PKCE),
// /{tenant}/oauth2/v2.0/devicecode and /{tenant}/oauth2/v2.0/authorize, with
// Microsoft's errors (AADSTS codes in error_description).
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

class fake_microsoft {
 public:
  static constexpr const char* default_tenant = "contoso.onmicrosoft.com";
  static constexpr const char* default_client_id = "11111111-2222-3333-4444-555555555555";
  static constexpr const char* default_client_secret = "fake~ms~client~secret";

  // Starts listening on 127.0.0.1 (an ephemeral port), served from its own thread.
  explicit fake_microsoft(const test_pki& pki, std::string tenant = default_tenant,
                          std::string client_id = default_client_id,
                          std::string client_secret = default_client_secret);
  ~fake_microsoft();
  fake_microsoft(const fake_microsoft&) = delete;
  fake_microsoft& operator=(const fake_microsoft&) = delete;

  std::uint16_t port() const;
  std::string authority() const;  // https://127.0.0.1:PORT
  const std::string& tenant() const;
  const std::string& client_id() const;
  const std::string& client_secret() const;

  // ---- accounts and tokens
  // `refresh_token` becomes a valid grant for `email`.
  void add_account(const std::string& email, const std::string& refresh_token);
  // The grant ends: invalid_grant with `aadsts` as its description
  // from now on.
  void revoke(const std::string& refresh_token,
              const std::string& aadsts =
                  "AADSTS700082: The refresh token has expired due to "
                  "inactivity.");
  // Every refresh token this endpoint issued or was given for `email`, oldest first.
  std::vector<std::string> refresh_tokens_of(const std::string& email) const;
  // SMTP.SendAsApp with the Exchange mailbox permission: app-only tokens may send as `email`.
  void grant_app_mailbox(const std::string& email);
  // True when `access_token` was issued for `user` (a delegated token of that
  // account, or an app-only token with the mailbox granted) and has not
  // expired. Thread-safe: for the Exchange stand-in.
  bool token_valid(const std::string& user, const std::string& access_token) const;

  // ---- behaviour
  void set_expires_in(std::chrono::seconds);  // default 3599
  // Each answer waits this long after it is made (tokens issued, a refresh
  // token rotated) and before it is written: the window in which a client
  // that dies loses an answer Microsoft has already acted on.
  void set_delay(std::chrono::milliseconds);
  // Token requests answered (made) but not written yet.
  std::size_t answers_in_flight() const;
  // Every token request is answered with this (AADSTS code first in the
  // description); empty `error`: normal answers again.
  void fail_token_requests(int http_status, const std::string& error,
                           const std::string& description);

  // ---- device code (RFC 8628)
  void set_device_interval(std::chrono::seconds);  // what devicecode answers; default 1
  // The answers to the polls, in order ("authorization_pending", "slow_down",
  // "expired_token", "authorization_declined"); after them, the consenting
  // account's tokens (or authorization_pending while there is none).
  void script_device_polls(std::vector<std::string> answers);
  std::size_t device_polls() const;
  // ---- who signs in (device code and authorize)
  void set_consenting_account(const std::string& email);
  // The id_token names the account in preferred_username only (true) or in
  // email as well (false, the default).
  void id_token_without_email(bool);

  // ---- what happened
  std::size_t token_requests() const;
  std::size_t refreshes_served() const;
  std::size_t client_credentials_served() const;
  std::map<std::string, std::string> last_token_request() const;
  std::map<std::string, std::string> last_refresh_request() const;  // grant_type=refresh_token
  std::map<std::string, std::string> last_device_request() const;
  std::map<std::string, std::string> last_auth_request() const;

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace oauth_relay::fakes
