// Google's token endpoint and consent screen, as far as oauth-relay uses
// them, answered on https_fake_server's thread.
#include "fakes/fake_oauth.hpp"

#include "fakes/http_fake_parts.hpp"
#include "fakes/https_fake_server.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>
#include <vector>

#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace oauth_relay::fakes {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using steady = std::chrono::steady_clock;
using fields = http_parts::fields;
using http_parts::decode_form;
using http_parts::escape;
using http_parts::lower;
using http_parts::s256;
using http_parts::split_scope;
using http_parts::with_query;
using reply = https_reply;

// Google accepts loopback redirects on any port and path (installed-app flow).
bool loopback_redirect(std::string_view uri) {
  constexpr std::string_view prefix = "http://127.0.0.1:";
  if (uri.substr(0, prefix.size()) != prefix) return false;
  uri.remove_prefix(prefix.size());
  std::size_t digits = 0;
  while (digits < uri.size() && std::isdigit(static_cast<unsigned char>(uri[digits]))) ++digits;
  return digits > 0 && digits <= 5 && (digits == uri.size() || uri[digits] == '/');
}

reply oauth_error(http::status status, const std::string& error, const std::string& description) {
  return json_reply(status, {{"error", error}, {"error_description", description}});
}

reply page(http::status status, const std::string& text) {
  return {status, "text/html; charset=utf-8", "<html><body>" + text + "</body></html>", {}};
}

}  // namespace

struct fake_oauth::impl {
  struct grant {
    std::string email;
    bool revoked = false;
  };
  struct access {
    std::string email;
    std::string refresh_token;  // the grant it was issued under
    steady::time_point expires_at;
  };
  struct code {
    std::string email;
    std::string redirect_uri;
    std::string challenge;
    std::string scope;
    bool offline = false;
  };

  impl(const test_pki& pki, std::string id, std::string secret)
      : client_id(std::move(id)),
        client_secret(std::move(secret)),
        server(pki, options(), [this](const https_fake_server::request& r) { return handle(r); }) {}

  // Every request waits out set_delay before it is answered (and counts as
  // in flight from when it is read): a slow Google.
  static https_fake_options options() {
    https_fake_options o;
    o.server = "fake-oauth";
    o.headers = {{http::field::cache_control, "no-cache, no-store, max-age=0, must-revalidate"}};
    o.tls_options = asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                    asio::ssl::context::no_tlsv1_1;
    o.answer = https_fake_options::order::wait_then_handle;
    return o;
  }

  reply handle(const https_fake_server::request& request) {
    const std::string_view target(request.target().data(), request.target().size());
    const auto path = http_parts::path_of(target);
    if (path == "/token" && request.method() == http::verb::post) {
      return token(decode_form(request.body()));
    }
    if (path == "/auth" && request.method() == http::verb::get) {
      return consent(http_parts::query_of(target));
    }
    return page(http::status::not_found, "Not Found");
  }

  // ---------------------------------------------------------------- POST /token

  reply token(const fields& form) {
    std::lock_guard lock(mutex);
    ++token_requests;
    last_token_request = form;
    if (fail_503) return page(http::status::service_unavailable, "Service Unavailable");
    if (malformed) return {http::status::ok, "application/json", "{\"access_token\": ", {}};
    const auto field = http_parts::reader(form);
    // RFC 7523 §2.1: the assertion is the client's whole credential.
    if (field("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer") {
      return jwt_bearer(field("assertion"));
    }
    if (field("client_id") != client_id) {
      return oauth_error(http::status::unauthorized, "invalid_client",
                         "The OAuth client was not found.");
    }
    if (field("client_secret") != client_secret) {
      return oauth_error(http::status::unauthorized, "invalid_client", "Unauthorized");
    }
    const auto grant_type = field("grant_type");
    if (grant_type == "refresh_token") return refresh(field("refresh_token"));
    if (grant_type == "authorization_code") {
      return exchange(field("code"), field("code_verifier"), field("redirect_uri"));
    }
    return oauth_error(http::status::bad_request, "unsupported_grant_type",
                       "Invalid grant_type: " + grant_type);
  }

  reply refresh(const std::string& refresh_token) {
    auto it = grants.find(refresh_token);
    if (it == grants.end() || it->second.revoked) {
      return oauth_error(http::status::bad_request, "invalid_grant",
                         "Token has been expired or revoked.");
    }
    const std::string email = it->second.email;
    std::string current = refresh_token;
    nlohmann::json body = issue_access(email, refresh_token, "https://mail.google.com/");
    if (rotate) {
      it->second.revoked = true;
      current = new_refresh_token(email);
      body["refresh_token"] = current;
      // Access tokens stay tied to the grant chain, not to one string.
      for (auto& [t, a] : accesses)
        if (a.refresh_token == refresh_token) a.refresh_token = current;
    }
    ++refreshes;
    return json_reply(http::status::ok, body);
  }

  reply exchange(const std::string& code_value, const std::string& verifier,
                 const std::string& redirect_uri) {
    auto it = codes.find(code_value);
    if (it == codes.end()) {
      return oauth_error(http::status::bad_request, "invalid_grant", "Malformed auth code.");
    }
    const code c = it->second;
    codes.erase(it);  // single use, as RFC 6749 §4.1.2 requires
    if (redirect_uri != c.redirect_uri) {
      return oauth_error(http::status::bad_request, "redirect_uri_mismatch", "Bad Request");
    }
    if (verifier.empty()) {
      return oauth_error(http::status::bad_request, "invalid_grant", "Missing code verifier.");
    }
    if (s256(verifier) != c.challenge) {
      return oauth_error(http::status::bad_request, "invalid_grant", "Invalid code verifier.");
    }
    std::string refresh_token;
    if (c.offline) refresh_token = new_refresh_token(c.email);
    nlohmann::json body = issue_access(c.email, refresh_token, c.scope);
    if (!refresh_token.empty()) body["refresh_token"] = refresh_token;
    const auto now = http_parts::unix_seconds();
    const nlohmann::json claims = {{"iss", "https://accounts.google.com"},
                                   {"azp", client_id},
                                   {"aud", client_id},
                                   {"sub", "10000000000000000000" + std::to_string(codes_issued)},
                                   {"email", c.email},
                                   {"email_verified", true},
                                   {"iat", now},
                                   {"exp", now + 3600}};
    body["id_token"] = http_parts::fake_jwt(claims.dump());
    ++exchanges;
    return json_reply(http::status::ok, body);
  }

  // ---------------------------------------------------------------- JWT bearer

  struct service_account {
    std::string client_id;
    std::string key_id;
    std::string public_key_pem;
  };

  static std::optional<std::string> unbase64url(std::string_view text) {
    std::string b64(text);
    for (char& c : b64) {
      if (c == '-') c = '+';
      if (c == '_') c = '/';
      if (c == '+' || c == '/') continue;
      if (!std::isalnum(static_cast<unsigned char>(c))) return std::nullopt;
    }
    while (b64.size() % 4 != 0) b64 += '=';
    std::string out(b64.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(b64.data()),
                                  static_cast<int>(b64.size()));
    if (n < 0) return std::nullopt;
    std::size_t pad = 0;
    while (pad < 2 && !b64.empty() && b64[b64.size() - 1 - pad] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
  }

  static bool verify_rs256(const std::string& public_key_pem, std::string_view signed_part,
                           std::string_view signature) {
    BIO* bio = BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size()));
    EVP_PKEY* key = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    if (key == nullptr) return false;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    const bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key) == 1 &&
                    EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                                     signature.size(),
                                     reinterpret_cast<const unsigned char*>(signed_part.data()),
                                     signed_part.size()) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return ok;
  }

  reply refuse_assertion(const std::string& error, const std::string& description) {
    last_assertion_error = error + ": " + description;
    const auto status =
        error == "unauthorized_client" ? http::status::unauthorized : http::status::bad_request;
    return oauth_error(status, error, description);
  }

  // What Google checks of a service account's assertion, with its answers.
  reply jwt_bearer(const std::string& assertion) {
    const auto first = assertion.find('.');
    const auto second = first == std::string::npos ? first : assertion.find('.', first + 1);
    if (second == std::string::npos || assertion.find('.', second + 1) != std::string::npos) {
      return refuse_assertion("invalid_grant", "Invalid JWT: not three parts");
    }
    const auto header_text = unbase64url(std::string_view(assertion).substr(0, first));
    const auto claims_text =
        unbase64url(std::string_view(assertion).substr(first + 1, second - first - 1));
    const auto signature = unbase64url(std::string_view(assertion).substr(second + 1));
    if (!header_text || !claims_text || !signature) {
      return refuse_assertion("invalid_grant", "Invalid JWT: not base64url");
    }
    const auto header = nlohmann::json::parse(*header_text, nullptr, false);
    const auto claims = nlohmann::json::parse(*claims_text, nullptr, false);
    if (!header.is_object() || !claims.is_object()) {
      return refuse_assertion("invalid_grant", "Invalid JWT: not JSON");
    }
    if (header.value("alg", "") != "RS256" || header.value("typ", "") != "JWT") {
      return refuse_assertion("invalid_grant", "Invalid JWT: alg must be RS256, typ JWT");
    }
    const auto iss = claims.value("iss", "");
    const auto account = service_accounts.find(iss);
    if (account == service_accounts.end()) {
      return refuse_assertion("invalid_grant", "Invalid grant: account not found");
    }
    if (header.value("kid", "") != account->second.key_id ||
        !verify_rs256(account->second.public_key_pem, std::string_view(assertion).substr(0, second),
                      *signature)) {
      return refuse_assertion("invalid_grant", "Invalid JWT Signature.");
    }
    const auto now = http_parts::unix_seconds();
    const auto iat = claims.value("iat", std::int64_t{0});
    const auto exp = claims.value("exp", std::int64_t{0});
    if (claims.value("aud", "") !=
        "https://127.0.0.1:" + std::to_string(server.port()) + "/token") {
      return refuse_assertion("invalid_grant", "Invalid JWT: aud is not the token endpoint");
    }
    if (iat > now + 60 || exp <= now || exp - iat > 3600 || exp <= iat) {
      return refuse_assertion("invalid_grant",
                              "Invalid JWT: Token must be a short-lived token (60 minutes) and "
                              "in a reasonable timeframe. Check your iat and exp values in the "
                              "JWT claim.");
    }
    const auto sub = claims.value("sub", "");
    const auto at = sub.rfind('@');
    if (sub.empty() || at == std::string::npos) {
      return refuse_assertion("invalid_grant", "Invalid email or User ID");
    }
    const auto scopes = split_scope(claims.value("scope", ""));
    if (scopes.empty()) return refuse_assertion("invalid_scope", "Empty or missing scope.");
    const auto delegated = delegations.find({account->second.client_id, lower(sub.substr(at + 1))});
    const bool covered = delegated != delegations.end() &&
                         std::all_of(scopes.begin(), scopes.end(), [&](const std::string& s) {
                           return delegated->second.count(s) > 0;
                         });
    if (!covered) {
      return refuse_assertion("unauthorized_client",
                              "Client is unauthorized to retrieve access tokens using this "
                              "method, or client not authorized for any of the scopes requested.");
    }
    last_assertion_error.clear();
    subjects.push_back(sub);
    return json_reply(http::status::ok, issue_access(sub, "", claims.value("scope", "")));
  }

  nlohmann::json issue_access(const std::string& email, const std::string& refresh_token,
                              const std::string& scope) {
    const std::string token = "ya29.fake-" + std::to_string(++access_issued);
    accesses[token] = {email, refresh_token, steady::now() + expires_in};
    return {{"access_token", token},
            {"expires_in", expires_in.count()},
            {"scope", scope},
            {"token_type", "Bearer"}};
  }

  std::string new_refresh_token(const std::string& email) {
    std::string token = "1//fake-refresh-" + std::to_string(++refresh_issued);
    grants[token] = {email, false};
    latest[lower(email)] = token;
    return token;
  }

  // ---------------------------------------------------------------- GET /auth

  reply consent(const fields& query) {
    std::lock_guard lock(mutex);
    last_auth_request = query;
    const auto field = http_parts::reader(query);
    // Errors Google shows on its own page (no redirect): the client or the
    // redirect cannot be trusted with an answer.
    auto refuse = [&](const std::string& error, const std::string& text) {
      last_auth_error = error;
      return page(http::status::bad_request, "Error 400: " + error + ". " + text);
    };
    if (field("client_id") != client_id)
      return refuse("invalid_client", "The OAuth client was not found.");
    const auto redirect_uri = field("redirect_uri");
    if (!loopback_redirect(redirect_uri)) {
      return refuse("redirect_uri_mismatch", "Use a Desktop app client with a loopback redirect.");
    }
    if (field("response_type") != "code") return refuse("unsupported_response_type", "");
    const auto scopes = split_scope(field("scope"));
    for (const char* needed : {"https://mail.google.com/", "openid", "email"}) {
      if (!scopes.count(needed)) return refuse("invalid_scope", std::string("missing ") + needed);
    }
    if (field("code_challenge_method") != "S256" || field("code_challenge").size() != 43) {
      return refuse("invalid_request", "PKCE with code_challenge_method=S256 is required.");
    }
    const std::string state = field("state");
    constexpr const char* redirect_type = "text/html; charset=utf-8";
    if (deny || consenting.empty()) {
      last_auth_error = "access_denied";
      return redirect_reply(redirect_type,
                            with_query(redirect_uri, "error=access_denied&state=" + escape(state)));
    }
    last_auth_error.clear();
    const std::string code_value = "4/fake-code-" + std::to_string(++codes_issued);
    const std::string granted = granted_scopes.empty() ? field("scope") : granted_scopes;
    codes[code_value] = {consenting, redirect_uri, field("code_challenge"), granted,
                         field("access_type") == "offline"};
    return redirect_reply(
        redirect_type,
        with_query(redirect_uri, "state=" + escape(state) + "&code=" + escape(code_value) +
                                     "&scope=" + escape(granted)));
  }

  const std::string client_id;
  const std::string client_secret;
  mutable std::mutex mutex;                   // everything below
  std::map<std::string, grant> grants;        // by refresh token
  std::map<std::string, std::string> latest;  // lower-cased email -> newest refresh token
  std::map<std::string, access> accesses;     // by access token
  std::map<std::string, code> codes;          // by authorization code
  std::chrono::seconds expires_in{3599};
  bool fail_503 = false;
  bool malformed = false;
  bool rotate = false;
  bool deny = false;
  std::string consenting;
  std::string granted_scopes;
  std::size_t token_requests = 0;
  std::size_t refreshes = 0;
  std::size_t exchanges = 0;
  std::size_t access_issued = 0;
  std::size_t refresh_issued = 0;
  std::size_t codes_issued = 0;
  fields last_token_request;
  fields last_auth_request;
  std::string last_auth_error;
  std::map<std::string, service_account> service_accounts;  // by client_email
  std::map<std::pair<std::string, std::string>, std::set<std::string>>
      delegations;  // (client_id, domain) -> scopes
  std::string last_assertion_error;
  std::vector<std::string> subjects;
  // Last: built once the state handle() reads is, and stopped (its thread
  // joined) before that state goes away.
  https_fake_server server;
};

fake_oauth::fake_oauth(const test_pki& pki, std::string client_id, std::string client_secret)
    : impl_(std::make_unique<impl>(pki, std::move(client_id), std::move(client_secret))) {}

fake_oauth::~fake_oauth() = default;

std::uint16_t fake_oauth::port() const {
  return impl_->server.port();
}
std::string fake_oauth::token_url() const {
  return "https://127.0.0.1:" + std::to_string(impl_->server.port()) + "/token";
}
std::string fake_oauth::auth_url() const {
  return "https://127.0.0.1:" + std::to_string(impl_->server.port()) + "/auth";
}
const std::string& fake_oauth::client_id() const {
  return impl_->client_id;
}
const std::string& fake_oauth::client_secret() const {
  return impl_->client_secret;
}

void fake_oauth::add_account(const std::string& email, const std::string& refresh_token) {
  std::lock_guard lock(impl_->mutex);
  impl_->grants[refresh_token] = {email, false};
  impl_->latest[lower(email)] = refresh_token;
}

void fake_oauth::revoke(const std::string& refresh_token) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->grants.find(refresh_token);
  if (it != impl_->grants.end()) it->second.revoked = true;
  for (auto& [token, a] : impl_->accesses) {
    if (a.refresh_token == refresh_token) a.expires_at = steady::time_point::min();
  }
}

void fake_oauth::expire_access_tokens() {
  std::lock_guard lock(impl_->mutex);
  for (auto& [token, a] : impl_->accesses) a.expires_at = steady::time_point::min();
}

std::optional<std::string> fake_oauth::refresh_token_of(const std::string& email) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->latest.find(lower(email));
  if (it == impl_->latest.end()) return std::nullopt;
  auto grant = impl_->grants.find(it->second);
  if (grant == impl_->grants.end() || grant->second.revoked) return std::nullopt;
  return it->second;
}

bool fake_oauth::token_valid(const std::string& user, const std::string& access_token) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->accesses.find(access_token);
  return it != impl_->accesses.end() && lower(it->second.email) == lower(user) &&
         steady::now() < it->second.expires_at;
}

void fake_oauth::set_expires_in(std::chrono::seconds s) {
  std::lock_guard lock(impl_->mutex);
  impl_->expires_in = s;
}
void fake_oauth::fail_with_503(bool on) {
  std::lock_guard lock(impl_->mutex);
  impl_->fail_503 = on;
}
void fake_oauth::set_delay(std::chrono::milliseconds d) {
  impl_->server.set_delay(d);
}
void fake_oauth::rotate_refresh_tokens(bool on) {
  std::lock_guard lock(impl_->mutex);
  impl_->rotate = on;
}
void fake_oauth::respond_malformed(bool on) {
  std::lock_guard lock(impl_->mutex);
  impl_->malformed = on;
}
void fake_oauth::set_consenting_account(const std::string& email) {
  std::lock_guard lock(impl_->mutex);
  impl_->consenting = email;
}
void fake_oauth::deny_consent(bool on) {
  std::lock_guard lock(impl_->mutex);
  impl_->deny = on;
}
void fake_oauth::grant_only(const std::string& scopes) {
  std::lock_guard lock(impl_->mutex);
  impl_->granted_scopes = scopes;
}

void fake_oauth::add_service_account(const std::string& client_email, const std::string& client_id,
                                     const std::string& key_id, const std::string& public_key_pem) {
  std::lock_guard lock(impl_->mutex);
  impl_->service_accounts[client_email] = {client_id, key_id, public_key_pem};
}
void fake_oauth::delegate(const std::string& client_id, const std::string& domain,
                          const std::string& scopes) {
  std::lock_guard lock(impl_->mutex);
  if (scopes.empty()) {
    impl_->delegations.erase({client_id, lower(domain)});
  } else {
    impl_->delegations[{client_id, lower(domain)}] = split_scope(scopes);
  }
}
std::size_t fake_oauth::assertions_accepted() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->subjects.size();
}
std::string fake_oauth::last_assertion_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_assertion_error;
}
std::vector<std::string> fake_oauth::assertion_subjects() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->subjects;
}

std::size_t fake_oauth::token_requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->token_requests;
}
std::size_t fake_oauth::requests_in_flight() const {
  return impl_->server.requests_in_flight();
}
std::size_t fake_oauth::refreshes_served() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->refreshes;
}
std::size_t fake_oauth::codes_exchanged() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->exchanges;
}
std::map<std::string, std::string> fake_oauth::last_token_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_token_request;
}
std::map<std::string, std::string> fake_oauth::last_auth_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_auth_request;
}
std::string fake_oauth::last_auth_error() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_auth_error;
}

}  // namespace oauth_relay::fakes
