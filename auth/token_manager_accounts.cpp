// Which accounts the token manager keeps: the configured ones (again on each
// reload), the mailboxes of service accounts' domain patterns as they are
// first used, the service accounts' refreshes by the JWT bearer grant, and
// what each account shows: its status and its last delivery.
#include <algorithm>

#include <boost/asio/post.hpp>

#include "auth/oauth_errors.hpp"
#include "auth/token_manager.hpp"
#include "auth/token_manager_jobs.hpp"
#include "common/backoff.hpp"
#include "config/log.hpp"

namespace oauth_relay::auth {
namespace {

using std::chrono::duration_cast;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

bool same_oauth(const config::oauth_settings& a, const config::oauth_settings& b) {
  return a.client_id == b.client_id && a.client_secret == b.client_secret &&
         a.token_url == b.token_url && a.ca_file == b.ca_file;
}

// The same key in effect (a reload reads the file again: a new copy).
bool same_key(const config::service_account_key& a, const config::service_account_key& b) {
  return a.client_email == b.client_email && a.private_key_id == b.private_key_id &&
         a.token_uri == b.token_uri && a.private_key == b.private_key;
}

}  // namespace

token_manager::account* token_manager::find_account(const std::string& address) {
  const std::string key = key_of(address);
  if (auto it = accounts_.find(key); it != accounts_.end()) return &it->second;
  for (const auto& [pattern, service_key] : patterns_) {
    if (!config::pattern_covers(pattern, address)) continue;
    // One entry, one token per mailbox: Google issues each for its `sub`.
    account entry;
    entry.address = address;
    entry.service = service_key;
    entry.on_demand = true;
    entry.loaded = true;
    entry.state = token_state::expired;
    log::info("service_account_mailbox")
        .kv("account", address)
        .kv("pattern", pattern)
        .kv("service_account", service_key->client_email);
    return &accounts_.emplace(key, std::move(entry)).first->second;
  }
  return nullptr;
}

void token_manager::update_services(const config::settings& settings) {
  patterns_.clear();
  std::map<std::string, const config::account_settings*> listed;
  std::map<std::string, const config::account_settings*> app_only;
  for (const auto& s : settings.accounts) {
    if (s.app_only) app_only.emplace(key_of(s.address), &s);
    if (!s.service_account) continue;
    if (s.is_domain_pattern()) {
      patterns_.emplace_back(s.address, s.service_account);
    } else {
      listed.emplace(key_of(s.address), &s);
    }
  }
  const auto pattern_key = [this](const std::string& address) {
    for (const auto& [pattern, key] : patterns_) {
      if (config::pattern_covers(pattern, address)) return key;
    }
    return std::shared_ptr<const config::service_account_key>();
  };
  for (auto it = accounts_.begin(); it != accounts_.end();) {
    account& a = it->second;
    const auto named = listed.find(it->first);
    if (a.app_only || app_only.count(it->first)) {
      // Kept while it stays app_only; a consented account that became one
      // (or the reverse) starts over as what it is now.
      if (a.app_only && app_only.count(it->first)) {
        ++it;
      } else {
        fail_waiters(a, "account " + a.address + " changed how it gets its tokens");
        it = accounts_.erase(it);
      }
      continue;
    }
    if (!a.service) {
      // An account that was authorized by consent and is now a service account.
      if (named == listed.end()) {
        ++it;
      } else {
        fail_waiters(a, "account " + a.address + " is now a service account");
        it = accounts_.erase(it);
      }
      continue;
    }
    const auto want =
        named != listed.end() ? named->second->service_account : pattern_key(a.address);
    if (!want) {
      fail_waiters(a, "account " + a.address + " is no longer configured");
      it = accounts_.erase(it);
      continue;
    }
    if (!same_key(*a.service, *want)) {
      // Another key (or service account): what the old one got or was told no longer holds.
      a.access_token.clear();
      a.obtained_at.reset();
      a.failures = 0;
      a.last_error.clear();
      a.next_retry = steady_clock::now();
      set_state(a, token_state::expired);
    }
    a.service = want;
    ++it;
  }
  for (const auto& [key, s] : listed) {
    if (accounts_.count(key)) continue;
    account entry;
    entry.address = s->address;
    entry.service = s->service_account;
    entry.loaded = true;
    entry.state = token_state::expired;
    accounts_.emplace(key, std::move(entry));
  }
  for (const auto& [key, s] : app_only) {
    if (accounts_.count(key)) continue;
    account entry;
    entry.address = s->address;
    entry.provider = s->provider;
    entry.app_only = true;
    entry.loaded = true;
    entry.state = token_state::expired;
    accounts_.emplace(key, std::move(entry));
  }
}

bool token_manager::update_clients(const config::settings& settings) {
  bool changed = false;
  if (!client_ || !same_oauth(oauth_, settings.oauth)) {
    oauth_ = settings.oauth;
    client_ = std::make_shared<const token_client>(http_, settings.oauth, options_.connect_timeout,
                                                   options_.total_timeout);
    changed = true;
  }
  if (!settings.microsoft) {
    changed = changed || microsoft_client_ != nullptr;
    microsoft_client_.reset();
    microsoft_oauth_.reset();
    return changed;
  }
  auto microsoft = config::provider_of(settings, config::provider_kind::microsoft);
  if (!microsoft_oauth_ || !same_oauth(*microsoft_oauth_, microsoft.oauth)) {
    microsoft_oauth_ = microsoft.oauth;
    microsoft_client_ = std::make_shared<const token_client>(
        http_, std::move(microsoft), options_.connect_timeout, options_.total_timeout);
    changed = true;
  }
  return changed;
}

void token_manager::reconfigure(const config::settings& settings) {
  if (stopped_) return;
  if (update_clients(settings)) {
    // The fix may be in the new settings (secret, token_url, ca_file): try now.
    for (auto& [key, a] : accounts_) {
      a.client_refused = false;
      if (a.state == token_state::refresh_failing) a.next_retry = steady_clock::now();
    }
  }
  update_services(settings);
  std::map<std::string, const config::account_settings*> wanted;
  for (const auto& s : settings.accounts) {
    if (!s.service_account && !s.app_only) wanted.emplace(key_of(s.address), &s);
  }
  for (auto it = accounts_.begin(); it != accounts_.end();) {
    const auto want = wanted.find(it->first);
    if (want != wanted.end()) it->second.provider = want->second->provider;
    if (it->second.in_memory() || want != wanted.end()) {
      ++it;
      continue;
    }
    fail_waiters(it->second, "account " + it->second.address + " is no longer configured");
    it = accounts_.erase(it);
  }
  std::vector<config::account_settings> added;
  for (const auto& [key, s] : wanted) {
    if (accounts_.count(key)) continue;
    account entry;
    entry.address = s->address;
    entry.provider = s->provider;
    accounts_.emplace(key, std::move(entry));
    added.push_back(*s);
  }
  schedule();
  if (added.empty()) return;
  with_store([&store = store_, added] { return jobs::add_and_read_rows(store, added); },
             [this, added](jobs::rows_read read) {
               if (stopped_) return;
               if (read.error.empty()) {
                 apply_rows(read.rows, /*load=*/true);
               } else {
                 log::error("token_store_failed").kv("reason", read.error);
                 for (const auto& s : added) {
                   auto it = accounts_.find(key_of(s.address));
                   if (it == accounts_.end() || it->second.loaded) continue;
                   it->second.loaded =
                       true;  // as `missing`; the poll adopts the row once it is readable
                   it->second.last_error = read.error;
                   fail_waiters(it->second, "account " + s.address + ": " + read.error);
                 }
               }
               schedule();
             });
}

// ---------------------------------------------------------------- service accounts

void token_manager::start_service_refresh(account& a) {
  a.refreshing = true;
  if (a.app_only) {
    offload(
        blocking_,
        [client = client_for(a), life = life_] { return jobs::app_token(*client, life->stopping); },
        [this, key = key_of(a.address)](jobs::refresh_answer answer) {
          finish_service_refresh(key, nullptr, std::move(answer));
        });
    return;
  }
  offload(
      blocking_,
      [client = client_, key = a.service, mailbox = a.address, life = life_] {
        return jobs::service_token(*client, *key, mailbox, life->stopping);
      },
      [this, key = key_of(a.address), used = a.service](jobs::refresh_answer answer) {
        finish_service_refresh(key, used, std::move(answer));
      });
}

void token_manager::finish_service_refresh(const std::string& key,
                                           std::shared_ptr<const config::service_account_key> used,
                                           jobs::refresh_answer answer) {
  if (stopped_) return;
  auto it = accounts_.find(key);
  if (it == accounts_.end()) return;  // removed by reconfigure meanwhile
  account& a = it->second;
  a.refreshing = false;
  if (a.service != used) {
    // A reload brought another key meanwhile: ask again with it.
    serve_all(a);
    schedule();
    return;
  }
  const token_response& r = answer.response;
  auto waiters = std::move(a.waiters);
  a.waiters.clear();
  if (r.ok()) {
    a.access_token = r.access_token;
    a.expires_at = answer.expires_at;
    a.obtained_at = system_clock::now();
    a.failures = 0;
    a.last_error.clear();
    ++a.refreshes_ok;
    set_state(a, token_state::valid);
    {
      log::line line(log::level::info, "token_refreshed");
      line.kv("account", a.address);
      if (a.service) line.kv("service_account", a.service->client_email);
      if (a.app_only) line.kv("grant", "client_credentials");
      line.kv("expires_in", static_cast<std::int64_t>(r.expires_in.count()));
    }
    for (auto& w : waiters) w->post(served(a.access_token, a.state));
    schedule();
    return;
  }
  ++a.refreshes_failed;
  if (answer.signing_error.empty() && r.failure == token_failure::temporary) {
    a.failures += 1;
    retry_later(a, waiters, r.error,
                backoff(options_.retry_initial, options_.retry_max, a.failures),
                log::level::warning);
    return;
  }
  // Refused: delegation not granted, scope, mailbox, key. A person fixes it
  // in Google's consoles, which the relay cannot see: it asks again after
  // retry_max, or at once on reload (oauth-relayctl test does one).
  const advice why =
      a.app_only ? explain_token_failure(r, oauth_step::refresh, a.address, client_for(a)->oauth())
      : answer.signing_error.empty()
          ? explain_service_account_failure(r, a.address, *a.service, oauth_)
          : advice{answer.signing_error,
                   "put the JSON key Google's Cloud console made for the service "
                   "account in that file, then: systemctl reload oauth-relay"};
  a.access_token.clear();
  a.obtained_at.reset();
  a.failures += 1;
  a.next_retry = steady_clock::now() + options_.retry_max;
  a.last_error = "account " + a.address + " needs attention: " + why.cause + "; " + why.fix;
  set_state(a, token_state::needs_reauth);
  {
    log::line line(log::level::error, "token_refresh_failed");
    line.kv("account", a.address);
    if (a.service) line.kv("service_account", a.service->client_email);
    line.kv("state", to_string(a.state)).kv("reason", why.cause).kv("hint", why.fix);
  }
  for (auto& w : waiters) w->post(failed(a.state, a.last_error));
  schedule();
}

void token_manager::record_delivery(const std::string& account_address, std::int64_t when) {
  auto it = accounts_.find(key_of(account_address));
  if (it == accounts_.end() || stopped_) return;
  it->second.last_delivery = std::max(it->second.last_delivery.value_or(when), when);
  if (it->second.in_memory()) return;  // no row
  store_last_delivery(it->second, it->first);
}

void token_manager::store_last_delivery(account& a, const std::string& key) {
  if (a.delivery_writing || !a.last_delivery || a.stored_delivery == a.last_delivery) return;
  a.delivery_writing = true;
  const std::int64_t when = *a.last_delivery;
  with_store([&store = store_, key, when] { return jobs::record_delivery(store, key, when); },
             [this, key, when](std::string error) {
               auto it = accounts_.find(key);
               if (it == accounts_.end()) return;
               it->second.delivery_writing = false;
               if (!error.empty()) {
                 log_store_error(key, error);
                 return;  // tried again at the next delivery
               }
               it->second.stored_delivery = when;
               // A newer second meanwhile (also while stopping: the last one is kept).
               store_last_delivery(it->second, key);
             });
}

std::vector<account_status> token_manager::status() const {
  const auto now = system_clock::now();
  std::vector<account_status> out;
  out.reserve(accounts_.size());
  for (const auto& [key, a] : accounts_) {
    account_status s;
    s.address = a.address;
    s.state = a.state;
    const bool usable = !a.access_token.empty() && a.expires_at > now;
    if (s.state == token_state::valid && !usable) s.state = token_state::expired;
    if (!a.access_token.empty()) {
      s.access_expires_in_seconds =
          std::max<std::int64_t>(0, duration_cast<seconds>(a.expires_at - now).count());
    }
    s.last_delivery = a.last_delivery;
    s.last_error = a.last_error;
    if (a.service) s.service_account = a.service->client_email;
    s.authorized_at = a.authorized_at;
    s.refreshes_ok = a.refreshes_ok;
    s.refreshes_failed = a.refreshes_failed;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace oauth_relay::auth
