// Accounts from the token store and the config; the connection test runs the
// same token client and upstream client the daemon delivers with.
#include "ctl/accounts.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "auth/consent.hpp"
#include "auth/http_client.hpp"
#include "auth/jwt_bearer.hpp"
#include "auth/token_client.hpp"
#include "common/secret.hpp"
#include "ctl/daemon_client.hpp"
#include "ctl/state_access.hpp"
#include "relay/delivery/upstream_client.hpp"

namespace oauth_relay::ctl {
namespace {

namespace asio = boost::asio;

// One read of an SMTP exchange with Gmail takes well under a second; this
// bounds a test against a silent firewall without making the admin wait a minute.
constexpr std::chrono::seconds test_timeout{20};

std::string text_of(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

[[noreturn]] void malformed() {
  throw failure("oauth-relayd's answer to GET /accounts is not what it should be",
                "oauth-relayd and oauth-relayctl must be the same version: oauth-relayd "
                "--version; oauth-relayctl --version");
}

// Why the connection failed, for the statuses the token-free checks can give.
auth::advice explain_connect(const relay::connect_result& r, const auth::endpoint& where) {
  const std::string at = where.host + ":" + std::to_string(where.port);
  switch (r.status) {
    case relay::connect_status::network:
    case relay::connect_status::tls_failed:
      return auth::explain_transport_failure(where, r.message);
    case relay::connect_status::no_starttls:
      return {at + " did not offer STARTTLS; nothing secret was sent",
              "check upstream.host, upstream.port and upstream.tls (Gmail: port 587 with "
              "starttls, 465 with implicit)"};
    case relay::connect_status::refused:
      return {r.message + " (" + at + ")",
              "the server refused the session: if upstream.host is smtp.gmail.com try again "
              "later; otherwise check upstream.host"};
    case relay::connect_status::protocol_error:
    case relay::connect_status::ok:
      break;
  }
  return {r.message + " (" + at + ")",
          "check upstream.port and upstream.tls (Gmail: port 587 with starttls, 465 with "
          "implicit)"};
}

struct upstream_run {
  relay::connect_result connected;
  std::optional<relay::auth_result> authenticated;
};

asio::awaitable<void> login(relay::upstream_client& client, const std::string& user,
                            const std::string& token, upstream_run& out) {
  out.connected = co_await client.connect();
  if (!out.connected.ok()) co_return;
  auto result = co_await client.authenticate(user, token);
  const bool ok = result.ok();
  out.authenticated = std::move(result);
  if (ok) {
    co_await client.quit();
  } else {
    client.close();
  }
}

}  // namespace

int run_accounts(const context& ctx, bool json) {
  const auto document = nlohmann::json::parse(accounts_document(ctx), nullptr, false);
  if (!document.is_object() || !document.contains("accounts") || !document["accounts"].is_array())
    malformed();
  if (json) {
    std::cout << document.dump(2) << std::endl;
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ADDRESS", "KIND", "STATE", "ACCESS TOKEN", "AUTHORIZED", "LAST DELIVERY", "LAST ERROR"}};
  std::vector<std::string> to_authorize;
  std::vector<std::string> held;  // "ADDRESS: STATE until TIME (why)"
  for (const auto& a : document["accounts"]) {
    if (!a.is_object()) malformed();
    const std::string address = text_of(a, "address");
    const std::string state = text_of(a, "token_state");
    const bool configured = a.value("configured", true);
    std::string expiry = "-";
    if (auto e = a.find("access_expires_in_seconds"); e != a.end() && e->is_number()) {
      const auto seconds = e->get<std::int64_t>();
      expiry = seconds <= 0 ? "expired" : "expires in " + format_duration(seconds);
    }
    const std::string delivered = text_of(a, "last_delivery");
    const std::string authorized = text_of(a, "authorized_at");
    const std::string error = text_of(a, "last_error");
    const std::string service_account = text_of(a, "service_account");
    // A service account needs no consent: its kind names the key's client_email.
    const std::string kind =
        service_account.empty() ? std::string("consent") : "service account " + service_account;
    rows.push_back({address + (configured ? "" : " (not in config)"), kind,
                    state == "per_mailbox" ? "per mailbox" : state, expiry,
                    authorized.empty() ? "-" : authorized, delivered.empty() ? "-" : delivered,
                    error.empty() ? "-" : error});
    if (configured && service_account.empty() && (state == "missing" || state == "needs_reauth")) {
      to_authorize.push_back(address);
    }
    const std::string sending = text_of(a, "sending_state");
    if (!sending.empty() && sending != "ok") {
      const std::string until = text_of(a, "resumes_at");
      const std::string why = text_of(a, "sending_reason");
      held.push_back(address + ": " + sending + (until.empty() ? "" : " until " + until) +
                     (why.empty() ? "" : " (" + why + ")") +
                     "; its mail waits and goes out by itself");
    }
  }
  print_table(std::cout, rows);
  for (const auto& h : held) std::cout << "held " << h << "\n";
  for (const auto& a : to_authorize) {
    std::cout << "to authorize " << a << ": oauth-relayctl authorize " << a << "\n";
  }
  std::cout.flush();
  return 0;
}

namespace {

void ok(const std::string& step) {
  std::cout << "[ok]     " << step << std::endl;
}

// The step that failed and the verdict; the failure to throw, with the cause and fix.
failure failed_step(const std::string& step, const std::string& address, const auth::advice& why) {
  std::cout << "[failed] " << step << "\n"
            << "verdict: " << address << " cannot send mail" << std::endl;
  return failure(why);
}

int test_upstream(const context& ctx, const config::upstream_settings& upstream,
                  const std::string& address, const std::string& access_token);
int run_service_test(const context& ctx, const config::account_settings& account,
                     const std::string& mailbox);

}  // namespace

int run_test(const context& ctx, const std::string& address_arg) {
  const auto& account = require_account(ctx, address_arg);
  if (account.service_account) return run_service_test(ctx, account, address_arg);
  const std::string address = account.address;
  const auto provider = config::provider_of(ctx.settings, account.provider);
  auto fail = [&](const std::string& step, const auth::advice& why) {
    return failed_step(step, address, why);
  };
  if (account.app_only) {
    // 1 and 2. The application's own token (client credentials), no refresh token.
    const std::string step_app = "app-only access token from " + provider.oauth.token_url +
                                 " (client credentials, scope " + provider.app_only_scope + ")";
    const auth::token_client tokens(std::make_shared<auth::curl_http_client>(), provider);
    const auto answer = tokens.client_credentials();
    if (!answer.ok()) {
      throw fail(step_app, auth::explain_token_failure(answer, auth::oauth_step::refresh, address,
                                                       provider.oauth));
    }
    ok(step_app + " (valid for " + format_duration(answer.expires_in.count()) + ")");
    return test_upstream(ctx, provider.upstream, address, answer.access_token);
  }

  // 1. The stored refresh token.
  std::optional<auth::account_record> row;
  {
    auto store = open_store(ctx);
    row = store->get(address);
  }
  const std::string step_stored = "refresh token of " + address + " in the token store";
  if (!row || row->refresh_token.empty()) {
    throw fail(step_stored, {"no refresh token is stored for " + address,
                             "run: oauth-relayctl authorize " + address});
  }
  ok(step_stored);

  // 2. A fresh access token.
  const std::string step_refresh = "access token from " + provider.oauth.token_url;
  const auth::token_client tokens(std::make_shared<auth::curl_http_client>(), provider);
  const auto refreshed = tokens.refresh(row->refresh_token);
  if (refreshed.failure == auth::token_failure::invalid_grant && !provider.is_microsoft()) {
    // How long ago it was authorized tells the consent screen's Testing
    // status (about seven days) from a revocation.
    throw fail(step_refresh,
               auth::explain_refresh_refusal(address, row->authorized_at, now_seconds()));
  }
  if (!refreshed.ok()) {
    throw fail(step_refresh, auth::explain_token_failure(refreshed, auth::oauth_step::refresh,
                                                         address, provider.oauth));
  }
  ok(step_refresh + " (valid for " + format_duration(refreshed.expires_in.count()) + ")");
  try {
    // The daemon can use it too; a token stored meanwhile by authorize wins.
    auto store = open_store(ctx);
    store->store_access_token(address, row->token_generation, refreshed.access_token,
                              now_seconds() + refreshed.expires_in.count(),
                              refreshed.refresh_token);
  } catch (const std::exception&) {
    // Not needed for the test itself.
  }
  return test_upstream(ctx, provider.upstream, address, refreshed.access_token);
}

namespace {

int run_service_test(const context& ctx, const config::account_settings& account,
                     const std::string& mailbox) {
  if (account.is_domain_pattern() && lower(mailbox) == lower(account.address)) {
    throw failure(
        account.address + " is a domain pattern, not a mailbox",
        "test one of its mailboxes: oauth-relayctl test someone" + account.address.substr(1));
  }
  const auto& key = *account.service_account;
  auto fail = [&](const std::string& step, const auth::advice& why) {
    return failed_step(step, mailbox, why);
  };

  // 1. The key file (read and checked with the config; OpenSSL must take its key).
  const std::string step_key = "service account key " + key.file.string() + " (" +
                               key.client_email + ", client ID " + key.client_id + ")";
  if (const auto problem = auth::service_account_key_problem(key); !problem.empty()) {
    throw fail(step_key, {problem,
                          "download a new JSON key (Google Cloud console > IAM & Admin > "
                          "Service accounts > Keys > Add key) into that file"});
  }
  ok(step_key);

  // 2. An access token for the mailbox by the JWT bearer grant.
  const std::string step_token = "access token for " + mailbox + " from " + key.token_uri +
                                 " (domain-wide delegation, scope " +
                                 std::string(auth::mail_scope) + ")";
  const auth::token_client tokens(std::make_shared<auth::curl_http_client>(), ctx.settings.oauth);
  std::string assertion = auth::make_jwt_assertion(key, mailbox, auth::mail_scope, now_seconds());
  const auto answer = tokens.jwt_bearer(assertion, key.token_uri);
  wipe(assertion);
  if (!answer.ok()) {
    throw fail(step_token,
               auth::explain_service_account_failure(answer, mailbox, key, ctx.settings.oauth));
  }
  ok(step_token + " (valid for " + format_duration(answer.expires_in.count()) + ")");
  // A running daemon asks again now rather than after its pause: the fix
  // (delegation granted in the Admin console) may be what this test shows.
  try {
    const auto control = control_socket_client(ctx);
    if (control.running()) control.post("/accounts/reload", nlohmann::json::object());
  } catch (const std::exception&) {
    // Not needed for the test itself.
  }
  return test_upstream(ctx, ctx.settings.upstream, mailbox, answer.access_token);
}

int test_upstream(const context& ctx, const config::upstream_settings& upstream,
                  const std::string& address, const std::string& access_token) {
  const auth::endpoint where = auth::upstream_endpoint(upstream);
  const std::string at = where.host + ":" + std::to_string(where.port);
  const std::string tls_mode =
      upstream.tls == config::upstream_tls::starttls ? "STARTTLS" : "implicit TLS";
  auto fail = [&](const std::string& step, const auth::advice& why) {
    return failed_step(step, address, why);
  };

  // 3 to 5. Connect, authenticate, quit.
  const std::string step_connect = "connect to " + at + " with " + tls_mode;
  std::optional<asio::ssl::context> tls;
  try {
    tls.emplace(relay::make_upstream_tls_context(upstream.ca_file));
  } catch (const std::exception& e) {
    throw fail(step_connect, {e.what(),
                              "upstream.ca_file must name a readable PEM file of CA "
                              "certificates"});
  }
  asio::io_context io;
  auto options = relay::upstream_options::from(upstream, ctx.settings.hostname);
  options.id = "test";
  options.timeout = test_timeout;
  relay::upstream_client client(io.get_executor(), *tls, options);
  upstream_run run;
  std::exception_ptr crashed;
  asio::co_spawn(io, login(client, address, access_token, run),
                 [&crashed](std::exception_ptr e) { crashed = e; });
  io.run();
  if (crashed) std::rethrow_exception(crashed);

  if (!run.connected.ok()) throw fail(step_connect, explain_connect(run.connected, where));
  ok(step_connect + ", certificate verified");
  const std::string step_auth = "authenticate as " + address + " with XOAUTH2";
  const auto& authed = *run.authenticated;
  if (!authed.ok()) {
    if (authed.reply && authed.status != relay::auth_status::connection_lost) {
      const auto& r = *authed.reply;
      std::string text;  // all lines: Gmail puts its help link on the last one
      for (const auto& line : r.lines) {
        const auto begin = line.find_first_not_of(' ');
        if (begin == std::string::npos) continue;
        text += (text.empty() ? "" : " ") + line.substr(begin);
      }
      throw fail(step_auth,
                 auth::explain_smtp_auth_refusal(r.code, r.enhanced, text, address, where.host));
    }
    if (authed.status == relay::auth_status::permanent) {
      throw fail(step_auth, {at + ": " + authed.message,
                             "upstream.host must be smtp.gmail.com (port 587 with starttls, or "
                             "465 with implicit)"});
    }
    throw fail(step_auth, auth::explain_transport_failure(where, authed.message));
  }
  ok(step_auth);
  ok("quit");
  std::cout << "verdict: " << address << " can send mail through " << at << std::endl;
  return 0;
}

}  // namespace

}  // namespace oauth_relay::ctl
