// The installed-application consent (RFC 8252 loopback redirect, RFC 7636
// PKCE): verifier, challenge, state, the consent URL and the redirect's answer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/text.hpp"  // base64url_encode, for the verifier and state
#include "config/provider.hpp"

namespace oauth_relay::auth {

// SMTP needs the full mail scope (Gmail's XOAUTH2 accepts no narrower one);
// "openid email" makes the token endpoint name the consenting account in an id_token.
inline constexpr std::string_view consent_scope = config::google_consent_scope;
inline constexpr std::string_view mail_scope = config::google_mail_scope;

// RFC 7636 §7.1: 32 octets of entropy give a 43-character verifier.
inline constexpr std::size_t verifier_octets = 32;
// Enough that a state cannot be guessed by another local process.
inline constexpr std::size_t state_octets = 16;

// `n` octets from OpenSSL's CSPRNG (RAND_bytes). Throws std::runtime_error
// when the generator cannot deliver.
std::string random_octets(std::size_t n);

struct pkce {
  std::string verifier;   // RFC 7636 §4.1: 43..128 characters of [A-Za-z0-9-._~]
  std::string challenge;  // BASE64URL(SHA256(verifier))
};

// RFC 7636 §4.2, code_challenge_method=S256.
std::string s256_challenge(std::string_view verifier);
// A fresh verifier (random_octets(verifier_octets), base64url) and its challenge.
pkce make_pkce();
// A fresh `state` value (RFC 6749 §10.12).
std::string make_state();

// http://127.0.0.1:PORT/ : the IPv4 literal, never "localhost" (RFC 8252 §8.3).
std::string loopback_redirect_uri(std::uint16_t port);

struct consent_request {
  std::string auth_url;  // config oauth.auth_url; may already carry a query
  std::string client_id;
  std::string redirect_uri;
  std::string login_hint;  // the account expected to consent
  std::string code_challenge;
  std::string state;
  std::string scope = std::string(consent_scope);  // the provider's consent scope
  // Google's access_type=offline (for a refresh token); Microsoft asks for
  // offline_access in the scope instead.
  bool access_type_offline = true;
};

// The authorization request (RFC 6749 §4.1.1) as Google's installed-app flow
// wants it: response_type=code, the consent_scope, access_type=offline and
// prompt=consent (so a refresh token is issued even on a repeated consent),
// PKCE S256, state and login_hint.
std::string consent_url(const consent_request& request);

// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string percent_encode(std::string_view text);
// Decodes %XX and '+' (form encoding); malformed escapes are kept as they are.
std::string percent_decode(std::string_view text);

// What the authorization server put in the redirect (RFC 6749 §4.1.2 and §4.1.2.1).
struct redirect_params {
  std::optional<std::string> code;
  std::optional<std::string> state;
  std::optional<std::string> error;
  std::string error_description;
  std::string scope;  // granted scopes, when sent

  // A code or an error: the redirect carries an answer.
  bool answered() const { return code.has_value() || error.has_value(); }
};

// Parses what a browser was redirected to, as any of
//   http://127.0.0.1:PORT/?code=...&state=...   (pasted from the address bar)
//   /?code=...&state=...                         (an HTTP request target)
//   ?code=...  or  code=...&state=...            (just the query)
// Surrounding whitespace, quotes and angle brackets are ignored, as is a
// fragment. Returns nothing when there is no query at all.
std::optional<redirect_params> parse_redirect(std::string_view text);

// The path of an HTTP request target ("/favicon.ico?x" -> "/favicon.ico").
std::string_view target_path(std::string_view target);

// True when the space-separated `granted` scopes include `wanted`. An empty
// `granted` means the server did not say (RFC 6749 §5.1: then it is what was asked).
bool scope_granted(std::string_view granted, std::string_view wanted);

}  // namespace oauth_relay::auth
