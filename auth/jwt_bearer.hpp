// The JWT bearer grant of RFC 7523 for a Google service account: the signed
// assertion that asks Google for an access token to one mailbox (sub).
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/secret.hpp"
#include "config/service_account_key.hpp"

namespace oauth_relay::auth {

// RFC 7523 §2.1.
inline constexpr std::string_view jwt_bearer_grant_type =
    "urn:ietf:params:oauth:grant-type:jwt-bearer";
// Google accepts assertions valid for at most one hour (exp - iat).
inline constexpr std::chrono::seconds assertion_lifetime{3600};

// The key could not sign (OpenSSL refused the PEM, or the key is not RSA).
// The message names the key file; never any of the key.
class jwt_signing_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// header.claims.signature, each part base64url without padding (RFC 7515
// §7.1): header {"alg":"RS256","typ":"JWT","kid":private_key_id}, claims
// {"iss":client_email,"sub":subject,"scope":scope,"aud":token_uri,
// "iat":issued_at,"exp":issued_at+3600}, signed RSASSA-PKCS1-v1_5 with
// SHA-256 (RFC 7518 §3.3). Every buffer that held the key is wiped.
std::string make_jwt_assertion(const config::service_account_key& key, std::string_view subject,
                               std::string_view scope, std::int64_t issued_at);

// Whether the key file's private key is one OpenSSL reads as RSA; the
// reason when not (for --check-config and oauth-relayctl test).
std::string service_account_key_problem(const config::service_account_key& key);

}  // namespace oauth_relay::auth
