// Pure: rows and config in, the listing out. No token's text is read beyond
// whether there is one.
#include "daemon/accounts_report.hpp"

#include <algorithm>
#include <cctype>
#include <map>

#include <nlohmann/json.hpp>

#include "daemon/health_report.hpp"

namespace oauth_relay::daemon {
namespace {

using json = nlohmann::json;

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

json entry(const std::string& address, const auth::account_record* row, bool configured,
           std::int64_t now, const std::map<std::string, account_sending>& sending) {
  json a = {{"address", address},       {"kind", "oauth"},
            {"token_state", "missing"}, {"access_expires_in_seconds", nullptr},
            {"last_delivery", nullptr}, {"last_error", nullptr},
            {"configured", configured}, {"service_account", nullptr},
            {"pattern", nullptr},       {"sending_state", nullptr},
            {"resumes_at", nullptr},    {"sent_24h", nullptr},
            {"authorized_at", nullptr}};
  for (const auto& [key, s] : sending) {
    if (lower(key) != lower(address)) continue;
    a["sending_state"] = s.state;
    if (s.resumes_at) a["resumes_at"] = iso8601_utc(*s.resumes_at);
    if (!s.reason.empty()) a["sending_reason"] = s.reason;
    a["sent_24h"] = s.sent_24h;
  }
  if (row == nullptr) return a;
  auto state = row->state;
  if (!row->access_token.empty() && row->access_expires_at > 0) {
    const std::int64_t expires_in = row->access_expires_at - now;
    a["access_expires_in_seconds"] = std::max<std::int64_t>(expires_in, 0);
    // The daemon may have been stopped since it wrote `valid`.
    if (state == auth::token_state::valid && expires_in <= 0) state = auth::token_state::expired;
  }
  if (row->refresh_token.empty() && state != auth::token_state::needs_reauth) {
    state = auth::token_state::missing;
  }
  a["token_state"] = std::string(auth::to_string(state));
  if (row->last_delivery) a["last_delivery"] = iso8601_utc(*row->last_delivery);
  if (!row->last_error.empty()) a["last_error"] = row->last_error;
  if (row->authorized_at) a["authorized_at"] = iso8601_utc(*row->authorized_at);
  return a;
}

// An account whose tokens live in the daemon's memory only (a service
// account's mailbox, an app-only account) as the daemon holds it (`status`),
// or as a daemon that is not running would start it (`expired`).
json live_entry(const std::string& address, const char* kind, const auth::account_status* status,
                const std::map<std::string, account_sending>& sending) {
  json a = entry(address, nullptr, true, 0, sending);
  a["kind"] = kind;
  a["token_state"] = "expired";
  if (status == nullptr) return a;
  a["token_state"] = std::string(auth::to_string(status->state));
  if (status->access_expires_in_seconds) {
    a["access_expires_in_seconds"] = *status->access_expires_in_seconds;
  }
  if (status->last_delivery) a["last_delivery"] = iso8601_utc(*status->last_delivery);
  if (!status->last_error.empty()) a["last_error"] = status->last_error;
  return a;
}

json service_entry(const std::string& address, const config::service_account_key& key,
                   const auth::account_status* status,
                   const std::map<std::string, account_sending>& sending) {
  json a = live_entry(address, "service_account", status, sending);
  a["service_account"] = key.client_email;
  return a;
}

const auth::account_status* live_status(const std::vector<auth::account_status>& live,
                                        const std::string& address) {
  const auto it = std::find_if(live.begin(), live.end(), [&](const auth::account_status& s) {
    return lower(s.address) == lower(address);
  });
  return it == live.end() ? nullptr : &*it;
}

void add_service_account(json& list, const config::account_settings& account,
                         const std::vector<auth::account_status>& live,
                         const std::map<std::string, account_sending>& sending) {
  const auto& key = *account.service_account;
  if (!account.is_domain_pattern()) {
    list.push_back(
        service_entry(account.address, key, live_status(live, account.address), sending));
    return;
  }
  json pattern = service_entry(account.address, key, nullptr, sending);
  pattern["token_state"] = "per_mailbox";
  list.push_back(std::move(pattern));
  for (const auto& s : live) {
    if (s.service_account.empty() || !config::pattern_covers(account.address, s.address)) continue;
    json mailbox = service_entry(s.address, key, &s, sending);
    mailbox["pattern"] = account.address;
    list.push_back(std::move(mailbox));
  }
}

}  // namespace

std::string accounts_json(const std::vector<auth::account_record>& rows,
                          const std::vector<config::account_settings>& configured,
                          const std::vector<auth::account_status>& live, std::int64_t now_seconds,
                          const std::map<std::string, account_sending>& sending) {
  std::map<std::string, const auth::account_record*> by_address;
  for (const auto& row : rows) by_address.emplace(lower(row.address), &row);
  json list = json::array();
  for (const auto& account : configured) {
    if (account.service_account) {
      // A row left from before it became a service account is not its state.
      by_address.erase(lower(account.address));
      add_service_account(list, account, live, sending);
      continue;
    }
    if (account.app_only) {
      // Microsoft's client credentials: no row, like a service account.
      by_address.erase(lower(account.address));
      list.push_back(
          live_entry(account.address, "app_only", live_status(live, account.address), sending));
      continue;
    }
    auto it = by_address.find(lower(account.address));
    const auth::account_record* row = it == by_address.end() ? nullptr : it->second;
    list.push_back(entry(account.address, row, true, now_seconds, sending));
    if (it != by_address.end()) by_address.erase(it);
  }
  for (const auto& [key, row] : by_address) {
    list.push_back(entry(row->address, row, false, now_seconds, sending));
  }
  return json{{"accounts", std::move(list)}}.dump(-1, ' ', false, json::error_handler_t::replace) +
         "\n";
}

}  // namespace oauth_relay::daemon
