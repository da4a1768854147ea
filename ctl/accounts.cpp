// Accounts from the token store and the config; the connection test runs the
// same token client and upstream client the daemon delivers with.
#include "ctl/accounts.hpp"

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "auth/http_client.hpp"
#include "auth/token_client.hpp"
#include "daemon/health_report.hpp"
#include "relay/delivery/upstream_client.hpp"

namespace oauth_relay::ctl {
namespace {

namespace asio = boost::asio;

// One read of an SMTP exchange with Gmail takes well under a second; this
// bounds a test against a silent firewall without making the admin wait a minute.
constexpr std::chrono::seconds test_timeout{20};

struct account_view {
  std::string address;
  auth::token_state state = auth::token_state::missing;
  std::optional<std::int64_t> expires_in;
  std::optional<std::int64_t> last_delivery;
  std::string last_error;
  bool configured = true;
};

std::vector<account_view> collect(const context& ctx) {
  std::map<std::string, auth::account_record> rows;
  {
    auto store = open_store(ctx);
    for (auto& row : store->load_all()) rows.emplace(lower(row.address), std::move(row));
  }
  give_state_files_to_owner(ctx.settings.state_dir);
  const std::int64_t now = now_seconds();
  auto view = [now](const auth::account_record& row) {
    account_view v;
    v.address = row.address;
    v.state = row.state;
    if (!row.access_token.empty() && row.access_expires_at > 0) {
      v.expires_in = row.access_expires_at - now;
      // The daemon may have been stopped since it wrote `valid`.
      if (v.state == auth::token_state::valid && *v.expires_in <= 0) {
        v.state = auth::token_state::expired;
      }
    }
    if (row.refresh_token.empty() && v.state != auth::token_state::needs_reauth) {
      v.state = auth::token_state::missing;
    }
    v.last_delivery = row.last_delivery;
    v.last_error = row.last_error;
    return v;
  };
  std::vector<account_view> out;
  for (const auto& account : ctx.settings.accounts) {
    auto it = rows.find(lower(account.address));
    if (it == rows.end()) {
      account_view v;
      v.address = account.address;
      out.push_back(v);
    } else {
      out.push_back(view(it->second));
      out.back().address = account.address;
      rows.erase(it);
    }
  }
  for (const auto& [key, row] : rows) {
    out.push_back(view(row));
    out.back().configured = false;
  }
  return out;
}

std::string expiry_text(const account_view& v) {
  if (!v.expires_in) return "-";
  if (*v.expires_in <= 0) return "expired";
  return "expires in " + format_duration(*v.expires_in);
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
  const auto accounts = collect(ctx);
  if (json) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& v : accounts) {
      nlohmann::json a = {{"address", v.address},
                          {"token_state", auth::to_string(v.state)},
                          {"access_expires_in_seconds", nullptr},
                          {"last_delivery", nullptr},
                          {"last_error", nullptr},
                          {"configured", v.configured}};
      if (v.expires_in) a["access_expires_in_seconds"] = std::max<std::int64_t>(*v.expires_in, 0);
      if (v.last_delivery) a["last_delivery"] = daemon::iso8601_utc(*v.last_delivery);
      if (!v.last_error.empty()) a["last_error"] = v.last_error;
      list.push_back(std::move(a));
    }
    std::cout << nlohmann::json{{"accounts", list}}.dump(2) << std::endl;
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ADDRESS", "STATE", "ACCESS TOKEN", "LAST DELIVERY", "LAST ERROR"}};
  std::vector<std::string> to_authorize;
  for (const auto& v : accounts) {
    rows.push_back({v.address + (v.configured ? "" : " (not in config)"),
                    std::string(auth::to_string(v.state)), expiry_text(v),
                    v.last_delivery ? daemon::iso8601_utc(*v.last_delivery) : "-",
                    v.last_error.empty() ? "-" : v.last_error});
    if (v.configured &&
        (v.state == auth::token_state::missing || v.state == auth::token_state::needs_reauth)) {
      to_authorize.push_back(v.address);
    }
  }
  print_table(std::cout, rows);
  for (const auto& a : to_authorize) {
    std::cout << "to authorize " << a << ": oauth-relayctl authorize " << a << "\n";
  }
  std::cout.flush();
  return 0;
}

int run_test(const context& ctx, const std::string& address_arg) {
  const std::string address = require_account(ctx, address_arg).address;
  const auto& upstream = ctx.settings.upstream;
  const auth::endpoint where = auth::upstream_endpoint(upstream);
  const std::string at = where.host + ":" + std::to_string(where.port);
  const std::string tls_mode =
      upstream.tls == config::upstream_tls::starttls ? "STARTTLS" : "implicit TLS";

  auto ok = [](const std::string& step) { std::cout << "[ok]     " << step << std::endl; };
  auto fail = [&](const std::string& step, const auth::advice& why) {
    std::cout << "[failed] " << step << "\n"
              << "verdict: " << address << " cannot send mail" << std::endl;
    return failure(why);
  };

  // 1. The stored refresh token.
  std::optional<auth::account_record> row;
  {
    auto store = open_store(ctx);
    row = store->get(address);
  }
  give_state_files_to_owner(ctx.settings.state_dir);
  const std::string step_stored = "refresh token of " + address + " in the token store";
  if (!row || row->refresh_token.empty()) {
    throw fail(step_stored, {"no refresh token is stored for " + address,
                             "run: oauth-relayctl authorize " + address});
  }
  ok(step_stored);

  // 2. A fresh access token.
  const std::string step_refresh = "access token from " + ctx.settings.oauth.token_url;
  const auth::token_client tokens(std::make_shared<auth::curl_http_client>(), ctx.settings.oauth);
  const auto refreshed = tokens.refresh(row->refresh_token);
  if (!refreshed.ok()) {
    throw fail(step_refresh, auth::explain_token_failure(refreshed, auth::oauth_step::refresh,
                                                         address, ctx.settings.oauth));
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
  give_state_files_to_owner(ctx.settings.state_dir);

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
  asio::co_spawn(io, login(client, address, refreshed.access_token, run),
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

}  // namespace oauth_relay::ctl
