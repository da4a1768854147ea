// The Microsoft identity platform's v2.0 endpoints as far as oauth-relay uses
// them, answered on https_fake_server's thread.
#include "fakes/fake_microsoft.hpp"

#include <algorithm>
#include <deque>
#include <mutex>
#include <set>

#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "fakes/http_fake_parts.hpp"
#include "fakes/https_fake_server.hpp"

namespace oauth_relay::fakes {
namespace {

namespace http = boost::beast::http;
using steady = std::chrono::steady_clock;
using namespace http_parts;
using reply = https_reply;

constexpr std::string_view smtp_send = "https://outlook.office.com/SMTP.Send";
constexpr std::string_view app_scope = "https://outlook.office365.com/.default";
constexpr std::string_view device_grant = "urn:ietf:params:oauth:grant-type:device_code";

// Microsoft's error body: the AADSTS code leads the description.
reply aad_error(http::status status, const std::string& error, const std::string& description) {
  return json_reply(status, {{"error", error},
                             {"error_description", description},
                             {"error_codes", nlohmann::json::array()},
                             {"trace_id", "00000000-fake"}});
}

// Microsoft accepts a loopback redirect on any port for http://localhost.
bool loopback_redirect(std::string_view uri) {
  for (std::string_view prefix : {"http://127.0.0.1:", "http://localhost:"}) {
    if (uri.starts_with(prefix)) return true;
  }
  return false;
}

}  // namespace

struct fake_microsoft::impl {
  struct grant {
    std::string email;
    bool revoked = false;
    std::string revoked_why;
  };
  struct access {
    std::string email;  // empty for an app-only token
    steady::time_point expires_at;
  };
  struct code {
    std::string email;
    std::string redirect_uri;
    std::string challenge;
  };

  impl(const test_pki& pki, std::string tenant_name, std::string id, std::string secret)
      : tenant(std::move(tenant_name)),
        client_id(std::move(id)),
        client_secret(std::move(secret)),
        server(pki, options(), [this](const https_fake_server::request& r) { return handle(r); }) {}

  // Each answer is made at once (tokens issued, a refresh token rotated) and
  // then waits out set_delay before it is written; Microsoft's TLS defaults.
  static https_fake_options options() {
    https_fake_options o;
    o.server = "fake-microsoft";
    o.answer = https_fake_options::order::handle_then_wait;
    return o;
  }

  reply handle(const https_fake_server::request& request) {
    const std::string_view target(request.target().data(), request.target().size());
    const std::string_view path = path_of(target);
    // /{tenant}/oauth2/v2.0/{endpoint}
    if (!path.starts_with('/')) return not_found();
    const auto slash = path.find('/', 1);
    if (slash == std::string_view::npos) return not_found();
    const std::string path_tenant(path.substr(1, slash - 1));
    const std::string_view rest = path.substr(slash);
    const std::string endpoint =
        rest.starts_with("/oauth2/v2.0/")
            ? std::string(rest.substr(std::string_view("/oauth2/v2.0/").size()))
            : std::string();
    const bool multi = path_tenant == "organizations" || path_tenant == "common";
    if (!multi && lower(path_tenant) != lower(tenant)) {
      return aad_error(http::status::bad_request, "invalid_request",
                       "AADSTS90002: Tenant '" + path_tenant + "' not found.");
    }
    if (endpoint == "token" && request.method() == http::verb::post) {
      return token(decode_form(request.body()), multi);
    }
    if (endpoint == "devicecode" && request.method() == http::verb::post) {
      return devicecode(decode_form(request.body()));
    }
    if (endpoint == "authorize" && request.method() == http::verb::get) {
      return authorize(query_of(target));
    }
    return not_found();
  }

  static reply not_found() { return {http::status::not_found, "text/plain", "Not Found", {}}; }

  // ---------------------------------------------------------------- POST token

  reply token(const fields& form, bool multi_tenant) {
    std::lock_guard lock(mutex);
    ++token_requests;
    last_token_request = form;
    const auto field = reader(form);
    if (!forced_error.empty()) {
      return aad_error(static_cast<http::status>(forced_status), forced_error, forced_description);
    }
    if (field("client_id") != client_id) {
      return aad_error(http::status::bad_request, "unauthorized_client",
                       "AADSTS700016: Application with identifier '" + field("client_id") +
                           "' was not found in the directory '" + tenant + "'.");
    }
    if (form.count("client_secret") && field("client_secret") != client_secret) {
      return aad_error(http::status::unauthorized, "invalid_client",
                       "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                       "sent in the request is the client secret value, not the client secret "
                       "ID, for a secret added to app '" +
                           client_id + "'.");
    }
    const auto grant_type = field("grant_type");
    if (grant_type == "refresh_token") {
      last_refresh_request = form;
      return refresh(field("refresh_token"), field("scope"));
    }
    if (grant_type == "client_credentials") {
      if (multi_tenant) {
        return aad_error(http::status::bad_request, "invalid_request",
                         "AADSTS90009: Application is requesting a token for itself. This "
                         "scenario is supported only if resource is specified using the "
                         "GUID based App Identifier.");
      }
      return client_credentials(form.count("client_secret") > 0, field("scope"));
    }
    if (grant_type == device_grant) return device_poll(field("device_code"));
    if (grant_type == "authorization_code") {
      return exchange(field("code"), field("code_verifier"), field("redirect_uri"));
    }
    return aad_error(
        http::status::bad_request, "unsupported_grant_type",
        "AADSTS70003: The app requested an unsupported grant type '" + grant_type + "'.");
  }

  reply refresh(const std::string& refresh_token, const std::string& scope) {
    auto it = grants.find(refresh_token);
    if (it == grants.end()) {
      return aad_error(http::status::bad_request, "invalid_grant",
                       "AADSTS9002313: Invalid request. Request is malformed or invalid.");
    }
    if (it->second.revoked) {
      return aad_error(http::status::bad_request, "invalid_grant", it->second.revoked_why);
    }
    if (!split_scope(scope).count(std::string(smtp_send))) {
      return aad_error(http::status::bad_request, "invalid_scope",
                       "AADSTS70011: The provided request must include a 'scope' input "
                       "parameter.");
    }
    const std::string email = it->second.email;
    nlohmann::json body = issue_access(email, std::string(smtp_send));
    // Microsoft rotates on every refresh and keeps the old token valid (until
    // its own lifetime ends), so a lost answer costs nothing.
    body["refresh_token"] = new_refresh_token(email);
    ++refreshes;
    return json_reply(http::status::ok, body);
  }

  reply client_credentials(bool has_secret, const std::string& scope) {
    if (!has_secret) {
      return aad_error(http::status::unauthorized, "invalid_client",
                       "AADSTS7000218: The request body must contain the following parameter: "
                       "'client_assertion' or 'client_secret'.");
    }
    if (scope != app_scope) {
      return aad_error(http::status::bad_request, "invalid_scope",
                       "AADSTS1002012: The provided value for scope " + scope +
                           " is not valid. Client credential flows must have a scope value "
                           "with /.default suffixed to the resource identifier.");
    }
    ++app_tokens;
    return json_reply(http::status::ok, issue_access("", std::string(app_scope)));
  }

  reply exchange(const std::string& code_value, const std::string& verifier,
                 const std::string& redirect_uri) {
    auto it = codes.find(code_value);
    if (it == codes.end()) {
      return aad_error(http::status::bad_request, "invalid_grant",
                       "AADSTS70000: The provided authorization code is invalid.");
    }
    const code c = it->second;
    codes.erase(it);
    if (redirect_uri != c.redirect_uri) {
      return aad_error(http::status::bad_request, "invalid_grant",
                       "AADSTS50148: The code_verifier does not match the code_challenge "
                       "supplied in the authorization request for PKCE.");
    }
    if (s256(verifier) != c.challenge) {
      return aad_error(http::status::bad_request, "invalid_grant",
                       "AADSTS501481: The Code_Verifier does not match the code_challenge "
                       "supplied in the authorization request.");
    }
    return json_reply(http::status::ok, consented_tokens(c.email));
  }

  nlohmann::json consented_tokens(const std::string& email) {
    nlohmann::json body = issue_access(email, std::string(smtp_send));
    body["refresh_token"] = new_refresh_token(email);
    nlohmann::json claims = {{"aud", client_id},
                             {"iss", "https://login.microsoftonline.com/fake-tid/v2.0"},
                             {"tid", "fake-tid"},
                             {"preferred_username", email},
                             {"name", "Fake User"}};
    if (!without_email) claims["email"] = email;
    body["id_token"] = fake_jwt(claims.dump());
    return body;
  }

  // ---------------------------------------------------------------- device code

  reply devicecode(const fields& form) {
    std::lock_guard lock(mutex);
    last_device_request = form;
    auto it = form.find("client_id");
    if (it == form.end() || it->second != client_id) {
      return aad_error(http::status::bad_request, "unauthorized_client",
                       "AADSTS700016: Application was not found in the directory.");
    }
    const std::string device_code = "fake-device-code-" + std::to_string(++devices_issued);
    device_codes.insert(device_code);
    return json_reply(http::status::ok,
                      {{"device_code", device_code},
                       {"user_code", "FAKE" + std::to_string(1000 + devices_issued)},
                       {"verification_uri", "https://microsoft.com/devicelogin"},
                       {"expires_in", 900},
                       {"interval", device_interval.count()},
                       {"message",
                        "To sign in, use a web browser to open the page "
                        "https://microsoft.com/devicelogin and enter the code."}});
  }

  reply device_poll(const std::string& device_code) {
    ++polls;
    if (!device_codes.count(device_code)) {
      return aad_error(http::status::bad_request, "invalid_grant",
                       "AADSTS70000: The provided value for the input parameter 'device_code' "
                       "is not valid.");
    }
    if (!device_script.empty()) {
      const std::string answer = device_script.front();
      device_script.pop_front();
      static const std::map<std::string, std::string> descriptions = {
          {"authorization_pending",
           "AADSTS70016: OAuth 2.0 device flow error. Authorization is pending. Continue "
           "polling."},
          {"slow_down", "AADSTS70016: Slow down."},
          {"expired_token",
           "AADSTS70020: The provided value for the input parameter "
           "'device_code' is not valid. Device codes expire after 15 minutes."},
          {"authorization_declined",
           "AADSTS70019: The end user denied the authorization "
           "request."}};
      const auto d = descriptions.find(answer);
      if (answer != "authorization_pending") device_codes.erase(device_code);
      if (answer == "slow_down") device_codes.insert(device_code);
      return aad_error(http::status::bad_request, answer,
                       d == descriptions.end() ? answer : d->second);
    }
    if (consenting.empty()) {
      return aad_error(http::status::bad_request, "authorization_pending",
                       "AADSTS70016: Authorization is pending.");
    }
    device_codes.erase(device_code);
    return json_reply(http::status::ok, consented_tokens(consenting));
  }

  // ---------------------------------------------------------------- GET authorize

  reply authorize(const fields& query) {
    std::lock_guard lock(mutex);
    last_auth_request = query;
    const auto field = reader(query);
    auto refuse = [](const std::string& text) {
      return reply{http::status::bad_request, "text/html", "<html>" + text + "</html>", {}};
    };
    if (field("client_id") != client_id) return refuse("AADSTS700016: Application not found.");
    const auto redirect_uri = field("redirect_uri");
    if (!loopback_redirect(redirect_uri)) {
      return refuse("AADSTS50011: The redirect URI specified in the request does not match.");
    }
    if (!split_scope(field("scope")).count(std::string(smtp_send))) {
      return refuse("AADSTS70011: invalid scope");
    }
    if (field("code_challenge_method") != "S256" || field("code_challenge").size() != 43) {
      return refuse("AADSTS501491: PKCE with S256 is required.");
    }
    if (consenting.empty()) {
      return redirect_reply(
          "text/html",
          with_query(redirect_uri,
                     "error=access_denied&error_description=" +
                         escape("AADSTS65004: User declined to consent to access the app.") +
                         "&state=" + escape(field("state"))));
    }
    const std::string code_value = "0.fake-ms-code-" + std::to_string(++codes_issued);
    codes[code_value] = {consenting, redirect_uri, field("code_challenge")};
    return redirect_reply(
        "text/html", with_query(redirect_uri,
                                "code=" + escape(code_value) + "&state=" + escape(field("state"))));
  }

  nlohmann::json issue_access(const std::string& email, const std::string& scope) {
    const std::string token = "eyJ0eXAiOiJKV1Qi.fake-ms-" + std::to_string(++access_issued);
    accesses[token] = {email, steady::now() + expires_in};
    return {{"token_type", "Bearer"},
            {"scope", scope},
            {"expires_in", expires_in.count()},
            {"ext_expires_in", expires_in.count()},
            {"access_token", token}};
  }

  std::string new_refresh_token(const std::string& email) {
    std::string token = "0.fake-ms-refresh-" + std::to_string(++refresh_issued);
    grants[token] = {email, false, {}};
    issued_to[lower(email)].push_back(token);
    return token;
  }

  const std::string tenant;
  const std::string client_id;
  const std::string client_secret;
  mutable std::mutex mutex;  // everything below
  std::map<std::string, grant> grants;
  std::map<std::string, std::vector<std::string>> issued_to;  // lower-cased email -> tokens
  std::map<std::string, access> accesses;
  std::map<std::string, code> codes;
  std::set<std::string> app_mailboxes;  // lower-cased
  std::set<std::string> device_codes;
  std::deque<std::string> device_script;
  std::chrono::seconds expires_in{3599};
  std::chrono::seconds device_interval{1};
  int forced_status = 0;
  std::string forced_error;
  std::string forced_description;
  std::string consenting;
  bool without_email = false;
  std::size_t token_requests = 0;
  std::size_t refreshes = 0;
  std::size_t app_tokens = 0;
  std::size_t polls = 0;
  std::size_t access_issued = 0;
  std::size_t refresh_issued = 0;
  std::size_t codes_issued = 0;
  std::size_t devices_issued = 0;
  fields last_token_request;
  fields last_refresh_request;
  fields last_device_request;
  fields last_auth_request;
  // Last: built once the state handle() reads is, and stopped (its thread
  // joined) before that state goes away.
  https_fake_server server;
};

fake_microsoft::fake_microsoft(const test_pki& pki, std::string tenant, std::string client_id,
                               std::string client_secret)
    : impl_(std::make_unique<impl>(pki, std::move(tenant), std::move(client_id),
                                   std::move(client_secret))) {}

fake_microsoft::~fake_microsoft() = default;

std::uint16_t fake_microsoft::port() const {
  return impl_->server.port();
}
std::string fake_microsoft::authority() const {
  return "https://127.0.0.1:" + std::to_string(impl_->server.port());
}
const std::string& fake_microsoft::tenant() const {
  return impl_->tenant;
}
const std::string& fake_microsoft::client_id() const {
  return impl_->client_id;
}
const std::string& fake_microsoft::client_secret() const {
  return impl_->client_secret;
}

void fake_microsoft::add_account(const std::string& email, const std::string& refresh_token) {
  std::lock_guard lock(impl_->mutex);
  impl_->grants[refresh_token] = {email, false, {}};
  impl_->issued_to[lower(email)].push_back(refresh_token);
}

void fake_microsoft::revoke(const std::string& refresh_token, const std::string& aadsts) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->grants.find(refresh_token);
  if (it != impl_->grants.end()) it->second = {it->second.email, true, aadsts};
}

std::vector<std::string> fake_microsoft::refresh_tokens_of(const std::string& email) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->issued_to.find(lower(email));
  return it == impl_->issued_to.end() ? std::vector<std::string>() : it->second;
}

void fake_microsoft::grant_app_mailbox(const std::string& email) {
  std::lock_guard lock(impl_->mutex);
  impl_->app_mailboxes.insert(lower(email));
}

bool fake_microsoft::token_valid(const std::string& user, const std::string& access_token) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->accesses.find(access_token);
  if (it == impl_->accesses.end() || steady::now() >= it->second.expires_at) return false;
  if (it->second.email.empty()) return impl_->app_mailboxes.count(lower(user)) > 0;
  return lower(it->second.email) == lower(user);
}

void fake_microsoft::set_expires_in(std::chrono::seconds s) {
  std::lock_guard lock(impl_->mutex);
  impl_->expires_in = s;
}
void fake_microsoft::set_delay(std::chrono::milliseconds d) {
  impl_->server.set_delay(d);
}
std::size_t fake_microsoft::answers_in_flight() const {
  return impl_->server.requests_in_flight();
}
void fake_microsoft::fail_token_requests(int http_status, const std::string& error,
                                         const std::string& description) {
  std::lock_guard lock(impl_->mutex);
  impl_->forced_status = http_status;
  impl_->forced_error = error;
  impl_->forced_description = description;
}
void fake_microsoft::set_device_interval(std::chrono::seconds s) {
  std::lock_guard lock(impl_->mutex);
  impl_->device_interval = s;
}
void fake_microsoft::script_device_polls(std::vector<std::string> answers) {
  std::lock_guard lock(impl_->mutex);
  impl_->device_script.assign(answers.begin(), answers.end());
}
std::size_t fake_microsoft::device_polls() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->polls;
}
void fake_microsoft::set_consenting_account(const std::string& email) {
  std::lock_guard lock(impl_->mutex);
  impl_->consenting = email;
}
void fake_microsoft::id_token_without_email(bool on) {
  std::lock_guard lock(impl_->mutex);
  impl_->without_email = on;
}
std::size_t fake_microsoft::token_requests() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->token_requests;
}
std::size_t fake_microsoft::refreshes_served() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->refreshes;
}
std::size_t fake_microsoft::client_credentials_served() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->app_tokens;
}
std::map<std::string, std::string> fake_microsoft::last_token_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_token_request;
}
std::map<std::string, std::string> fake_microsoft::last_refresh_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_refresh_request;
}
std::map<std::string, std::string> fake_microsoft::last_device_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_device_request;
}
std::map<std::string, std::string> fake_microsoft::last_auth_request() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->last_auth_request;
}

}  // namespace oauth_relay::fakes
