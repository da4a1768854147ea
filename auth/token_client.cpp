// Token endpoint requests (RFC 6749 §6 refresh, §4.1.3 code exchange with
// RFC 7636 PKCE) and the classification of Google's answers.
#include "auth/token_client.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "auth/jwt_bearer.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"

namespace oauth_relay::auth {
namespace {

// Long enough for Google's descriptions ("Token has been expired or revoked.").
constexpr std::size_t max_description = 200;
// Google's lifetime when an answer leaves expires_in out (RFC 6749 §5.1 makes it optional).
constexpr std::chrono::seconds default_expires_in{3600};

// The endpoint's "error" code, kept only if it looks like one.
std::string clean_code(std::string_view code) {
  if (code.empty() || code.size() > 64) return {};
  for (char c : code) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return {};
  }
  return std::string(code);
}

enum class grant { refresh, code, jwt_bearer, client_credentials };

// A parsed answer holds the tokens as well: its strings are wiped with it.
class wipe_json_on_exit {
 public:
  explicit wipe_json_on_exit(nlohmann::json& json) : json_(json) {}
  ~wipe_json_on_exit() {
    if (!json_.is_object()) return;
    for (auto& value : json_) {
      if (value.is_string()) wipe(value.get_ref<std::string&>());
    }
  }
  wipe_json_on_exit(const wipe_json_on_exit&) = delete;
  wipe_json_on_exit& operator=(const wipe_json_on_exit&) = delete;

 private:
  nlohmann::json& json_;
};

// OpenID Connect Core §3.1.3.7: an id_token is taken only if our client is
// among its audiences (one issued to another client says nothing about who
// consented to ours); its email only if the provider verified it.
void take_identity(token_response& r, std::string_view client_id, bool microsoft) {
  const auto claims = read_id_token(r.id_token);
  if (!claims) {
    r.identity_error = "the id_token could not be read (not a JWT with a JSON payload)";
    return;
  }
  if (std::find(claims->audiences.begin(), claims->audiences.end(), client_id) ==
      claims->audiences.end()) {
    r.identity_error = "the id_token was issued to another OAuth client (its aud is not " +
                       std::string(client_id) + ")";
    return;
  }
  if (microsoft) {
    // Microsoft's id_token names the account that signed in by its sign-in
    // name (preferred_username), or by email; it has no email_verified.
    r.email = claims->preferred_username.empty() ? claims->email : claims->preferred_username;
    return;
  }
  if (claims->email.empty()) return;  // no identity claimed: nothing to refuse
  if (!claims->email_verified) {
    r.identity_error = "Google has not verified the address " + claims->email +
                       " of the account that consented (email_verified is not true)";
    return;
  }
  r.email = claims->email;
}

token_response classify(const http_response& http, grant g, std::string_view client_id,
                        std::initializer_list<std::string_view> secrets, bool microsoft = false) {
  token_response r;
  r.http_status = http.status;
  if (!http.error.empty()) {
    r.failure = token_failure::temporary;
    r.error =
        "token endpoint unreachable: " + redact(one_line(http.error, max_description), secrets);
    return r;
  }

  auto json = nlohmann::json::parse(http.body, nullptr, /*allow_exceptions=*/false);
  wipe_json_on_exit wipe_json(json);
  if (http.status == 200) {
    if (!json.is_object() || !json.contains("access_token") || !json["access_token"].is_string() ||
        json["access_token"].get<std::string>().empty()) {
      r.failure = token_failure::temporary;
      r.error = "token endpoint answered HTTP 200 without an access token (malformed body)";
      return r;
    }
    r.access_token = json["access_token"].get<std::string>();
    r.expires_in = default_expires_in;
    if (auto it = json.find("expires_in"); it != json.end()) {
      if (it->is_number_integer()) {
        r.expires_in = std::chrono::seconds(it->get<std::int64_t>());
      } else if (it->is_string()) {
        // Some endpoints quote it; a non-number is as bad as a missing token.
        try {
          r.expires_in = std::chrono::seconds(std::stoll(it->get<std::string>()));
        } catch (const std::exception&) {
          r.failure = token_failure::temporary;
          r.error = "token endpoint answered HTTP 200 with a malformed expires_in";
          r.access_token.clear();
          return r;
        }
      }
    }
    auto text = [&](const char* key) {
      auto it = json.find(key);
      return it != json.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    r.refresh_token = text("refresh_token");
    r.id_token = text("id_token");
    r.scope = text("scope");
    if (!r.id_token.empty()) take_identity(r, client_id, microsoft);
    return r;
  }

  std::string description;
  if (json.is_object()) {
    if (auto it = json.find("error"); it != json.end() && it->is_string()) {
      r.oauth_error = clean_code(it->get<std::string>());
    }
    if (auto it = json.find("error_description"); it != json.end() && it->is_string()) {
      description = redact(one_line(it->get<std::string>(), max_description), secrets);
      r.oauth_description = description;
    }
  }
  const std::string detail = r.oauth_error.empty()
                                 ? "HTTP " + std::to_string(http.status)
                                 : r.oauth_error +
                                       (description.empty() ? "" : " (" + description + ")") +
                                       ", HTTP " + std::to_string(http.status);
  const bool client_error = http.status == 400 || http.status == 401;

  if (g == grant::jwt_bearer &&
      (r.oauth_error == "unauthorized_client" || r.oauth_error == "access_denied")) {
    // Google's answer when the Admin console grants the client ID no
    // domain-wide delegation, or not for the scope asked.
    r.failure = token_failure::not_delegated;
    r.error = "token endpoint refused the service account for this mailbox: " + detail;
  } else if (g == grant::jwt_bearer && client_error && r.oauth_error == "invalid_grant") {
    r.failure = token_failure::invalid_grant;
    r.error = "token endpoint refused the service account's assertion: " + detail;
  } else if (g == grant::jwt_bearer && r.oauth_error == "invalid_client") {
    r.failure = token_failure::invalid_client;
    r.error = "token endpoint does not know the service account: " + detail;
  } else if (client_error && r.oauth_error == "invalid_grant") {
    r.failure = token_failure::invalid_grant;
    r.error = g == grant::refresh ? "token endpoint refused the refresh token: " + detail
                                  : "token endpoint refused the authorization code: " + detail;
  } else if (r.oauth_error == "invalid_client" || r.oauth_error == "unauthorized_client") {
    r.failure = token_failure::invalid_client;
    r.error = "token endpoint refused the OAuth client: " + detail +
              ": wrong oauth.client_id or client secret";
  } else if (http.status >= 500 || http.status == 429 || http.status == 408) {
    r.failure = token_failure::temporary;
    r.error = "token endpoint answered " + detail;
  } else if (http.status >= 400 && http.status < 500) {
    r.failure = token_failure::rejected;
    r.error = "token endpoint refused the request: " + detail;
    if (r.oauth_error.empty()) r.error += " (check oauth.token_url)";
  } else {
    r.failure = token_failure::temporary;
    r.error = "token endpoint answered " + detail;
  }
  return r;
}

}  // namespace

std::string_view to_string(token_failure f) {
  switch (f) {
    case token_failure::none:
      return "none";
    case token_failure::invalid_grant:
      return "invalid_grant";
    case token_failure::invalid_client:
      return "invalid_client";
    case token_failure::not_delegated:
      return "not_delegated";
    case token_failure::rejected:
      return "rejected";
    case token_failure::temporary:
      return "temporary";
  }
  return "temporary";
}

std::string redact(std::string text, std::initializer_list<std::string_view> secrets) {
  for (auto secret : secrets) {
    if (secret.empty()) continue;
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 8)) {
      text.replace(pos, secret.size(), "********");
    }
  }
  return text;
}

std::optional<id_token_claims> read_id_token(std::string_view id_token) {
  const auto first = id_token.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = id_token.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  // A JWT's parts are base64url without padding (RFC 7515 §2 and §7.1,
  // RFC 7519 §3), as Google issues them: the strict decoder refuses anything else.
  const auto payload = base64url_decode(id_token.substr(first + 1, second - first - 1));
  if (!payload) return std::nullopt;
  const auto json = nlohmann::json::parse(*payload, nullptr, /*allow_exceptions=*/false);
  if (!json.is_object()) return std::nullopt;
  id_token_claims claims;
  if (auto it = json.find("email"); it != json.end() && it->is_string()) {
    claims.email = it->get<std::string>();
  }
  if (auto it = json.find("preferred_username"); it != json.end() && it->is_string()) {
    claims.preferred_username = it->get<std::string>();
  }
  if (auto it = json.find("email_verified"); it != json.end()) {
    // Google has sent it as a string in some of its id_tokens.
    claims.email_verified = (it->is_boolean() && it->get<bool>()) ||
                            (it->is_string() && it->get<std::string>() == "true");
  }
  if (auto it = json.find("aud"); it != json.end()) {
    if (it->is_string()) {
      claims.audiences.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const auto& a : *it) {
        if (a.is_string()) claims.audiences.push_back(a.get<std::string>());
      }
    }
  }
  return claims;
}

std::optional<std::string> id_token_email(std::string_view id_token) {
  auto claims = read_id_token(id_token);
  if (!claims || claims->email.empty()) return std::nullopt;
  return std::move(claims->email);
}

namespace {

config::provider google_with(config::oauth_settings oauth) {
  config::provider p = config::provider_of(config::settings{}, config::provider_kind::google);
  p.oauth = std::move(oauth);
  return p;
}

}  // namespace

token_client::token_client(std::shared_ptr<http_client> http, config::oauth_settings oauth,
                           std::chrono::milliseconds connect_timeout,
                           std::chrono::milliseconds total_timeout)
    : token_client(std::move(http), google_with(std::move(oauth)), connect_timeout, total_timeout) {
}

token_client::token_client(std::shared_ptr<http_client> http, config::provider provider,
                           std::chrono::milliseconds connect_timeout,
                           std::chrono::milliseconds total_timeout)
    : http_(std::move(http)), provider_(std::move(provider)) {
  options_.connect_timeout = connect_timeout;
  options_.total_timeout = total_timeout;
  options_.ca_file = provider_.oauth.ca_file;
}

token_response token_client::refresh(const std::string& refresh_token,
                                     const std::atomic<bool>* cancel) const {
  http_options options = options_;
  options.cancel = cancel;
  form_fields form{{"grant_type", "refresh_token"},
                   {"client_id", provider_.oauth.client_id},
                   {"client_secret", provider_.oauth.client_secret},
                   {"refresh_token", refresh_token}};
  if (provider_.is_microsoft()) {
    // The v2.0 endpoint names the resource by the scope; a public client
    // (no secret) sends none.
    if (provider_.oauth.client_secret.empty()) form.erase(form.begin() + 2);
    form.emplace_back("scope", provider_.refresh_scope);
  }
  auto http = http_->post_form(provider_.oauth.token_url, form, options);
  wipe_values(form);
  wipe_on_exit wipe_body(http.body);
  return classify(http, grant::refresh, provider_.oauth.client_id,
                  {provider_.oauth.client_secret, refresh_token}, provider_.is_microsoft());
}

token_response token_client::client_credentials(const std::atomic<bool>* cancel) const {
  http_options options = options_;
  options.cancel = cancel;
  form_fields form{{"grant_type", "client_credentials"},
                   {"client_id", provider_.oauth.client_id},
                   {"client_secret", provider_.oauth.client_secret},
                   {"scope", provider_.app_only_scope}};
  auto http = http_->post_form(provider_.oauth.token_url, form, options);
  wipe_values(form);
  wipe_on_exit wipe_body(http.body);
  auto r = classify(http, grant::client_credentials, provider_.oauth.client_id,
                    {provider_.oauth.client_secret});
  // An application's token names no person and has nothing to refresh with.
  r.refresh_token.clear();
  r.id_token.clear();
  r.email.clear();
  return r;
}

token_response token_client::jwt_bearer(const std::string& assertion, const std::string& token_uri,
                                        const std::atomic<bool>* cancel) const {
  http_options options = options_;
  options.cancel = cancel;
  form_fields form{{"grant_type", std::string(jwt_bearer_grant_type)}, {"assertion", assertion}};
  auto http = http_->post_form(token_uri, form, options);
  wipe_values(form);
  wipe_on_exit wipe_body(http.body);
  // No OAuth client here: an id_token (never sent for this grant) names nobody.
  auto r = classify(http, grant::jwt_bearer, {}, {assertion});
  r.id_token.clear();
  r.email.clear();
  return r;
}

namespace {

// A consent's answer must carry a refresh token and an id_token naming the
// account (the caller compares it with the address).
void require_consent(token_response& r, bool microsoft) {
  if (!r.ok()) return;
  // The id_token's signature is not checked: it came straight from the token
  // endpoint over TLS verified against its host, in answer to our own client
  // credentials, which is the assurance OpenID Connect Core §3.1.3.7 accepts
  // in place of a signature check.
  auto refuse = [&r](std::string why) {
    token_response refused;
    refused.failure = token_failure::rejected;
    refused.http_status = r.http_status;
    refused.error = std::move(why);
    r = std::move(refused);
  };
  if (r.refresh_token.empty()) {
    refuse(microsoft ? "token endpoint issued no refresh token (the scope must include "
                       "offline_access)"
                     : "token endpoint issued no refresh token (the consent must ask for "
                       "access_type=offline)");
  } else if (!r.identity_error.empty()) {
    refuse("token endpoint returned an id_token that does not name the account: " +
           r.identity_error);
  } else if (r.email.empty()) {
    refuse(microsoft ? "token endpoint returned no id_token naming the account (the scope must "
                       "include \"openid profile email\")"
                     : "token endpoint returned no id_token with an email claim (the scope must "
                       "include \"openid email\")");
  }
}

}  // namespace

token_response token_client::exchange_code(const std::string& code,
                                           const std::string& code_verifier,
                                           const std::string& redirect_uri) const {
  const auto& oauth = provider_.oauth;
  const bool microsoft = provider_.is_microsoft();
  form_fields form{{"grant_type", "authorization_code"}, {"code", code},
                   {"code_verifier", code_verifier},     {"redirect_uri", redirect_uri},
                   {"client_id", oauth.client_id},       {"client_secret", oauth.client_secret}};
  if (microsoft) {
    if (oauth.client_secret.empty()) form.pop_back();
    form.emplace_back("scope", provider_.consent_scope);
  }
  auto http = http_->post_form(oauth.token_url, form, options_);
  wipe_values(form);
  wipe_on_exit wipe_body(http.body);
  auto r = classify(http, grant::code, oauth.client_id, {oauth.client_secret, code, code_verifier},
                    microsoft);
  require_consent(r, microsoft);
  return r;
}

device_authorization token_client::start_device_authorization() const {
  device_authorization out;
  const auto& oauth = provider_.oauth;
  form_fields form{{"client_id", oauth.client_id}, {"scope", provider_.consent_scope}};
  auto http = http_->post_form(provider_.device_code_url, form, options_);
  wipe_on_exit wipe_body(http.body);
  if (http.error.empty() && http.status == 200) {
    auto json = nlohmann::json::parse(http.body, nullptr, /*allow_exceptions=*/false);
    wipe_json_on_exit wipe_json(json);
    auto text = [&](const char* key) {
      auto it = json.is_object() ? json.find(key) : json.end();
      return json.is_object() && it != json.end() && it->is_string() ? it->get<std::string>()
                                                                     : std::string();
    };
    auto seconds = [&](const char* key, std::chrono::seconds fallback) {
      auto it = json.is_object() ? json.find(key) : json.end();
      return json.is_object() && it != json.end() && it->is_number_integer() &&
                     it->get<std::int64_t>() >= 0
                 ? std::chrono::seconds(it->get<std::int64_t>())
                 : fallback;
    };
    out.device_code = text("device_code");
    out.user_code = one_line(text("user_code"), max_description);
    out.verification_uri = one_line(text("verification_uri"), max_description);
    out.message = one_line(text("message"), 2 * max_description);
    out.expires_in = seconds("expires_in", std::chrono::seconds(0));
    out.interval = seconds("interval", default_device_interval);
    if (out.device_code.empty() || out.user_code.empty() || out.verification_uri.empty()) {
      out.failure.failure = token_failure::temporary;
      out.failure.http_status = 200;
      out.failure.error =
          "device authorization endpoint answered HTTP 200 without device_code, user_code and "
          "verification_uri (malformed body)";
    }
    return out;
  }
  // A refusal has the token endpoint's shape (RFC 8628 §3.2 refers to RFC 6749 §5.2).
  out.failure = classify(http, grant::code, oauth.client_id, {oauth.client_secret}, true);
  if (out.failure.ok()) {
    out.failure.failure = token_failure::temporary;
    out.failure.error =
        "device authorization endpoint answered HTTP " + std::to_string(http.status);
  }
  return out;
}

token_response token_client::poll_device(const std::string& device_code) const {
  const auto& oauth = provider_.oauth;
  form_fields form{{"grant_type", "urn:ietf:params:oauth:grant-type:device_code"},
                   {"client_id", oauth.client_id},
                   {"device_code", device_code}};
  if (!oauth.client_secret.empty()) form.emplace_back("client_secret", oauth.client_secret);
  auto http = http_->post_form(oauth.token_url, form, options_);
  wipe_values(form);
  wipe_on_exit wipe_body(http.body);
  auto r = classify(http, grant::code, oauth.client_id, {oauth.client_secret, device_code},
                    provider_.is_microsoft());
  require_consent(r, provider_.is_microsoft());
  return r;
}

}  // namespace oauth_relay::auth
