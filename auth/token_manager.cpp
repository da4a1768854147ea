// Token manager: state in memory behind one mutex, token endpoint requests
// and store writes on a small worker pool, a scheduler thread for refreshes
// ahead of expiry, backoff retries and the store poll. The event loop only
// ever takes the mutex briefly and receives posted completions.
#include "auth/token_manager.hpp"

#include <algorithm>
#include <cctype>

#include "config/log.hpp"

namespace oauth_relay::auth {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

// The scheduler re-checks at least this often even with nothing due.
constexpr std::chrono::minutes idle_wakeup{1};

// Addresses compare without case, as the accounts table does (COLLATE NOCASE).
std::string key_of(std::string_view address) {
  std::string key(address);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

std::int64_t to_unix(system_clock::time_point t) {
  return duration_cast<seconds>(t.time_since_epoch()).count();
}

system_clock::time_point from_unix(std::int64_t s) {
  return system_clock::time_point(seconds(s));
}

std::string missing_message(const std::string& account) {
  return "account " + account + " has no refresh token: run \"oauth-relayctl authorize " + account +
         "\"";
}

bool same_oauth(const config::oauth_settings& a, const config::oauth_settings& b) {
  return a.client_id == b.client_id && a.client_secret == b.client_secret &&
         a.token_url == b.token_url && a.ca_file == b.ca_file;
}

token_result failed(token_state state, std::string error) {
  token_result r;
  r.state = state;
  r.error = std::move(error);
  return r;
}

token_result served(const std::string& access_token, token_state state) {
  token_result r;
  r.ok = true;
  r.access_token = access_token;
  r.state = state;
  return r;
}

}  // namespace

std::string needs_reauth_message(const std::string& account) {
  return "account " + account + " needs re-authorization: run \"oauth-relayctl authorize " +
         account +
         "\" (the refresh token was revoked, or expired after 7 days because the OAuth consent "
         "screen is in Testing)";
}

// What a refresh's store write found.
struct token_manager::refresh_outcome {
  bool superseded = false;            // a newer refresh token was stored meanwhile
  std::optional<account_record> row;  // that newer row
  std::int64_t generation = 0;        // stored generation after a success
  int failures = 0;                   // stored failure count after a failure
  std::string store_error;            // the write failed; memory is updated anyway
  system_clock::time_point expires_at{};
};

token_manager::token_manager(boost::asio::any_io_executor loop, const config::settings& settings,
                             token_store& store, std::shared_ptr<http_client> http,
                             token_manager_options options)
    : loop_(std::move(loop)),
      store_(store),
      http_(std::move(http)),
      options_(options),
      pool_(std::max<std::size_t>(options.workers, 1)),
      client_(std::make_shared<const token_client>(http_, settings.oauth, options.connect_timeout,
                                                   options.total_timeout)),
      oauth_(settings.oauth) {
  for (const auto& a : settings.accounts) {
    account entry;
    entry.address = a.address;
    accounts_.emplace(key_of(a.address), std::move(entry));
  }
  load_accounts(settings.accounts);
}

token_manager::~token_manager() {
  stop();
}

// ---------------------------------------------------------------- getting tokens

void token_manager::get_token(const std::string& address, completion_ptr done) {
  std::lock_guard lock(mutex_);
  if (stopped_) {
    done->post(failed(token_state::missing, "token manager stopped"));
    return;
  }
  auto it = accounts_.find(key_of(address));
  if (it == accounts_.end()) {
    done->post(failed(token_state::missing, "account " + address + " is not configured"));
    return;
  }
  serve_locked(it->second, std::move(done));
}

void token_manager::serve_locked(account& a, completion_ptr done) {
  const auto now = system_clock::now();
  if (!a.loaded) {
    a.waiters.push_back(std::move(done));
    return;
  }
  if (a.state == token_state::needs_reauth) {
    done->post(failed(token_state::needs_reauth, needs_reauth_message(a.address)));
    return;
  }
  if (a.refresh_token.empty()) {
    done->post(failed(token_state::missing, missing_message(a.address)));
    return;
  }
  if (!a.access_token.empty() && a.expires_at - now > lead(a, options_.min_validity)) {
    done->post(served(a.access_token, a.state));
    return;
  }
  if (a.refreshing) {
    a.waiters.push_back(std::move(done));
    return;
  }
  if (a.state == token_state::refresh_failing && steady_clock::now() < a.next_retry) {
    // Backing off: callers must not turn a failing endpoint into a hammered one.
    if (!a.access_token.empty() && a.expires_at > now) {
      done->post(served(a.access_token, a.state));
    } else {
      done->post(failed(a.state, "account " + a.address + ": " + a.last_error));
    }
    return;
  }
  start_refresh_locked(a);
  a.waiters.push_back(std::move(done));
}

void token_manager::start_refresh_locked(account& a) {
  a.refreshing = true;
  boost::asio::post(pool_, [this, key = key_of(a.address), token = a.refresh_token,
                            generation = a.generation, client = client_]() mutable {
    run_refresh(std::move(key), std::move(token), generation, std::move(client));
  });
}

// ---------------------------------------------------------------- refreshing (workers)

void token_manager::run_refresh(std::string key, std::string refresh_token, std::int64_t generation,
                                std::shared_ptr<const token_client> client) {
  token_response response;
  if (!stopping_) response = client->refresh(refresh_token, &stopping_);
  if (stopping_) {
    std::lock_guard lock(mutex_);
    if (auto it = accounts_.find(key); it != accounts_.end()) it->second.refreshing = false;
    return;  // stop() answers the callers; a shutdown is not a refresh failure
  }

  refresh_outcome out;
  std::lock_guard persist(persist_mutex_);
  try {
    if (response.ok()) {
      out.expires_at = system_clock::now() + response.expires_in;
      auto stored = store_.store_access_token(key, generation, response.access_token,
                                              to_unix(out.expires_at), response.refresh_token);
      if (stored) {
        out.generation = *stored;
      } else {
        out.superseded = true;
        out.row = store_.get(key);
      }
    } else {
      const bool reauth = response.failure == token_failure::invalid_grant;
      std::string address = key;
      {
        std::lock_guard lock(mutex_);
        if (auto it = accounts_.find(key); it != accounts_.end()) address = it->second.address;
      }
      auto failures = store_.record_refresh_failure(
          key, reauth ? token_state::needs_reauth : token_state::refresh_failing,
          reauth ? needs_reauth_message(address) : response.error, generation);
      if (failures) {
        out.failures = *failures;
      } else {
        out.superseded = true;
        out.row = store_.get(key);
      }
    }
  } catch (const token_store_error& e) {
    out.store_error = e.what();
  }
  finish_refresh(key, generation, response, out);
}

void token_manager::finish_refresh(const std::string& key, std::int64_t generation,
                                   const token_response& r, const refresh_outcome& out) {
  std::lock_guard lock(mutex_);
  auto it = accounts_.find(key);
  if (it == accounts_.end()) return;  // removed by reconfigure meanwhile
  account& a = it->second;
  a.refreshing = false;
  if (!out.store_error.empty()) {
    log::error("token_store_failed").kv("account", a.address).kv("reason", out.store_error);
  }

  if (out.superseded || a.generation != generation) {
    // oauth-relayctl stored a new refresh token while this one was in use: the
    // answer belongs to the old token. Start over with the new one.
    if (out.row && out.row->token_generation != a.generation) {
      adopt_locked(a, *out.row);
    } else if (!out.row && out.store_error.empty() && a.generation == generation) {
      // The row is gone: nothing to refresh with until one is stored again
      // (the poll adopts any row whose generation differs from -1).
      a.refresh_token.clear();
      a.access_token.clear();
      a.generation = -1;
      set_state_locked(a, token_state::missing);
    }
    auto waiters = std::move(a.waiters);
    a.waiters.clear();
    for (auto& w : waiters) serve_locked(a, std::move(w));
    wake_.notify_all();
    return;
  }

  auto waiters = std::move(a.waiters);
  a.waiters.clear();
  if (r.ok()) {
    a.access_token = r.access_token;
    a.expires_at = out.expires_at;
    a.obtained_at = system_clock::now();
    const bool rotated = !r.refresh_token.empty() && r.refresh_token != a.refresh_token;
    if (!r.refresh_token.empty()) a.refresh_token = r.refresh_token;
    if (out.store_error.empty()) a.generation = out.generation;
    a.failures = 0;
    a.client_refused = false;
    a.last_error.clear();
    ++a.refreshes_ok;
    set_state_locked(a, token_state::valid);
    log::info("token_refreshed")
        .kv("account", a.address)
        .kv("expires_in", static_cast<std::int64_t>(r.expires_in.count()))
        .kv("refresh_token", rotated ? "rotated" : "kept");
    for (auto& w : waiters) w->post(served(a.access_token, a.state));
    wake_.notify_all();
    return;
  }

  ++a.refreshes_failed;
  if (r.failure == token_failure::invalid_grant) {
    // The access token was issued under the dead grant; Google revokes both.
    a.access_token.clear();
    a.obtained_at.reset();
    a.last_error = needs_reauth_message(a.address);
    set_state_locked(a, token_state::needs_reauth);
    log::error("token_refresh_failed")
        .kv("account", a.address)
        .kv("state", to_string(a.state))
        .kv("reason", r.error)
        .kv("hint", "run \"oauth-relayctl authorize " + a.address + "\"");
    for (auto& w : waiters) w->post(failed(a.state, a.last_error));
    wake_.notify_all();
    return;
  }

  a.failures = out.store_error.empty() ? out.failures : a.failures + 1;
  a.client_refused = r.failure == token_failure::invalid_client;
  // A refused client will not fix itself: retry rarely until the config changes.
  const auto delay = a.client_refused ? options_.retry_max : backoff(a.failures);
  a.next_retry = steady_clock::now() + delay;
  a.last_error = r.error;
  set_state_locked(a, token_state::refresh_failing);
  log::line(a.client_refused ? log::level::error : log::level::warning, "token_refresh_failed")
      .kv("account", a.address)
      .kv("state", to_string(a.state))
      .kv("reason", r.error)
      .kv("failures", a.failures)
      .kv("retry_in_ms", static_cast<std::int64_t>(delay.count()));
  const auto now = system_clock::now();
  for (auto& w : waiters) {
    // A token that has not lapsed yet still authenticates.
    if (!a.access_token.empty() && a.expires_at > now) {
      w->post(served(a.access_token, a.state));
    } else {
      w->post(failed(a.state, "account " + a.address + ": " + a.last_error));
    }
  }
  wake_.notify_all();
}

std::chrono::milliseconds token_manager::backoff(int failures) const {
  auto delay = options_.retry_initial;
  for (int i = 1; i < failures && delay < options_.retry_max; ++i) delay *= 2;
  return std::min(delay, options_.retry_max);
}

std::chrono::nanoseconds token_manager::lead(const account& a, std::chrono::seconds wanted) const {
  std::chrono::nanoseconds l = wanted;
  // Short-lived tokens (tests, unusual endpoints) would otherwise be
  // refreshed continuously.
  if (a.obtained_at) l = std::min(l, (a.expires_at - *a.obtained_at) / 2);
  return l;
}

// ---------------------------------------------------------------- state

void token_manager::set_state_locked(account& a, token_state state) {
  if (a.state == state) return;
  a.state = state;
  if (on_change_) {
    boost::asio::post(loop_, [callback = on_change_, address = a.address, state] {
      (*callback)(address, state);
    });
  }
}

void token_manager::fail_waiters_locked(account& a, const std::string& error) {
  for (auto& w : a.waiters) w->post(failed(a.state, error));
  a.waiters.clear();
}

void token_manager::adopt_locked(account& a, const account_record& row) {
  const bool first = !a.loaded;
  a.loaded = true;
  a.refresh_token = row.refresh_token;
  a.access_token = row.access_token;
  a.expires_at = from_unix(row.access_expires_at);
  a.obtained_at.reset();
  a.generation = row.token_generation;
  a.last_error = row.last_error;
  if (row.last_delivery)
    a.last_delivery = std::max(a.last_delivery.value_or(0), *row.last_delivery);
  a.failures = row.refresh_failures;
  a.client_refused = false;
  a.next_retry = steady_clock::now();  // a new token (or a restart) deserves a try now
  token_state state = row.state;
  if (row.refresh_token.empty()) {
    state = token_state::missing;
  } else if (state == token_state::missing) {
    state = token_state::expired;
  }
  set_state_locked(a, state);
  if (!first) {
    log::notice("token_stored")
        .kv("account", a.address)
        .kv("generation", row.token_generation)
        .kv("state", to_string(a.state));
  }
  if (!a.refreshing && !a.waiters.empty()) {
    auto waiters = std::move(a.waiters);
    a.waiters.clear();
    for (auto& w : waiters) serve_locked(a, std::move(w));
  }
}

void token_manager::load_accounts(const std::vector<config::account_settings>& accounts) {
  std::lock_guard persist(persist_mutex_);
  store_.ensure_accounts(accounts);
  const auto rows = store_.load_all();
  std::lock_guard lock(mutex_);
  for (const auto& row : rows) {
    auto it = accounts_.find(key_of(row.address));
    if (it != accounts_.end() &&
        (!it->second.loaded || it->second.generation != row.token_generation))
      adopt_locked(it->second, row);
  }
  wake_.notify_all();
}

std::vector<std::pair<std::string, token_state>> token_manager::poll_store() {
  std::vector<std::pair<std::string, token_state>> changed;
  std::lock_guard persist(persist_mutex_);
  std::vector<account_record> rows;
  try {
    rows = store_.load_all();
  } catch (const token_store_error& e) {
    log::warning("token_store_poll_failed").kv("reason", e.what());
    return changed;
  }
  std::lock_guard lock(mutex_);
  for (const auto& row : rows) {
    auto it = accounts_.find(key_of(row.address));
    if (it == accounts_.end()) continue;
    account& a = it->second;
    if (a.loaded && row.token_generation != a.generation) {
      adopt_locked(a, row);
      changed.emplace_back(a.address, a.state);
    }
  }
  return changed;
}

void token_manager::reload(
    std::function<void(std::vector<std::pair<std::string, token_state>>)> done) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) {
      boost::asio::post(loop_, [done = std::move(done)] { done({}); });
      return;
    }
  }
  boost::asio::post(pool_, [this, done = std::move(done)]() mutable {
    auto changed = poll_store();
    boost::asio::post(loop_, [done = std::move(done), changed = std::move(changed)]() mutable {
      done(std::move(changed));
    });
  });
}

// ---------------------------------------------------------------- background

token_manager::steady_time token_manager::schedule_locked() {
  const auto now = steady_clock::now();
  const auto now_sys = system_clock::now();
  steady_time next = now + idle_wakeup;
  for (auto& [key, a] : accounts_) {
    if (!a.loaded || a.refreshing || a.refresh_token.empty() ||
        a.state == token_state::needs_reauth) {
      continue;
    }
    steady_time due;
    if (a.state == token_state::refresh_failing) {
      due = a.next_retry;
    } else if (a.access_token.empty()) {
      due = now;
    } else {
      due = now + duration_cast<steady_clock::duration>(
                      (a.expires_at - lead(a, options_.refresh_ahead)) - now_sys);
    }
    if (due <= now) {
      start_refresh_locked(a);
    } else {
      next = std::min(next, due);
    }
  }
  return next;
}

void token_manager::scheduler_loop() {
  std::unique_lock lock(mutex_);
  auto next_poll = steady_clock::now() + options_.poll_interval;
  while (!stopping_) {
    if (steady_clock::now() >= next_poll) {
      lock.unlock();
      poll_store();
      lock.lock();
      next_poll = steady_clock::now() + options_.poll_interval;
      continue;
    }
    const auto due = schedule_locked();
    wake_.wait_until(lock, std::min(due, next_poll));
  }
}

void token_manager::start() {
  std::lock_guard lock(mutex_);
  if (started_ || stopped_) return;
  started_ = true;
  scheduler_ = std::thread([this] { scheduler_loop(); });
}

void token_manager::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  wake_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  pool_.join();  // requests in flight notice stopping_ and give up
  std::lock_guard lock(mutex_);
  for (auto& [key, a] : accounts_) {
    a.refreshing = false;
    fail_waiters_locked(a, "token manager stopped");
  }
}

// ---------------------------------------------------------------- from the delivery side

void token_manager::invalidate(const std::string& account_address,
                               const std::string& access_token) {
  std::lock_guard lock(mutex_);
  auto it = accounts_.find(key_of(account_address));
  if (it == accounts_.end() || stopped_) return;
  account& a = it->second;
  if (a.access_token.empty() || a.access_token != access_token) return;  // already replaced
  a.access_token.clear();
  a.obtained_at.reset();
  if (a.state == token_state::valid) set_state_locked(a, token_state::expired);
  log::info("token_invalidated").kv("account", a.address);
  boost::asio::post(pool_, [this, key = it->first, access_token] {
    std::lock_guard persist(persist_mutex_);
    try {
      store_.clear_access_token(key, access_token);
    } catch (const token_store_error& e) {
      log::error("token_store_failed").kv("account", key).kv("reason", e.what());
    }
  });
  wake_.notify_all();  // the scheduler refreshes it now rather than at the next get
}

void token_manager::record_delivery(const std::string& account_address, std::int64_t when) {
  std::lock_guard lock(mutex_);
  auto it = accounts_.find(key_of(account_address));
  if (it == accounts_.end() || stopped_) return;
  it->second.last_delivery = when;
  boost::asio::post(pool_, [this, key = it->first, when] {
    std::lock_guard persist(persist_mutex_);
    try {
      store_.record_delivery(key, when);
    } catch (const token_store_error& e) {
      log::error("token_store_failed").kv("account", key).kv("reason", e.what());
    }
  });
}

void token_manager::reconfigure(const config::settings& settings) {
  std::vector<config::account_settings> added;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    if (!same_oauth(oauth_, settings.oauth)) {
      oauth_ = settings.oauth;
      client_ = std::make_shared<const token_client>(
          http_, settings.oauth, options_.connect_timeout, options_.total_timeout);
      // The fix may be in the new settings (secret, token_url, ca_file): try now.
      for (auto& [key, a] : accounts_) {
        a.client_refused = false;
        if (a.state == token_state::refresh_failing) a.next_retry = steady_clock::now();
      }
    }
    std::map<std::string, const config::account_settings*> wanted;
    for (const auto& s : settings.accounts) wanted.emplace(key_of(s.address), &s);
    for (auto it = accounts_.begin(); it != accounts_.end();) {
      if (wanted.count(it->first)) {
        ++it;
        continue;
      }
      fail_waiters_locked(it->second, "account " + it->second.address + " is no longer configured");
      it = accounts_.erase(it);
    }
    for (const auto& [key, s] : wanted) {
      if (accounts_.count(key)) continue;
      account entry;
      entry.address = s->address;
      accounts_.emplace(key, std::move(entry));
      added.push_back(*s);
    }
    wake_.notify_all();
  }
  if (added.empty()) return;
  boost::asio::post(pool_, [this, added = std::move(added)] {
    try {
      load_accounts(added);
    } catch (const token_store_error& e) {
      log::error("token_store_failed").kv("reason", e.what());
      std::lock_guard lock(mutex_);
      for (const auto& s : added) {
        auto it = accounts_.find(key_of(s.address));
        if (it == accounts_.end() || it->second.loaded) continue;
        it->second.loaded = true;  // as `missing`; the poll adopts the row once it is readable
        it->second.last_error = e.what();
        fail_waiters_locked(it->second, "account " + s.address + ": " + e.what());
      }
    }
  });
}

std::vector<account_status> token_manager::status() const {
  std::lock_guard lock(mutex_);
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
    s.refreshes_ok = a.refreshes_ok;
    s.refreshes_failed = a.refreshes_failed;
    out.push_back(std::move(s));
  }
  return out;
}

void token_manager::on_state_change(
    std::function<void(const std::string& account, token_state)> callback) {
  std::lock_guard lock(mutex_);
  on_change_ = callback
                   ? std::make_shared<const std::function<void(const std::string&, token_state)>>(
                         std::move(callback))
                   : nullptr;
}

}  // namespace oauth_relay::auth
