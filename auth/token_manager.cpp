// Token manager: state on the event loop, refreshes and the store poll driven
// by two timers there; token endpoint requests go to the blocking executor,
// store reads and writes to a strand of it, and their results come back.
#include "auth/token_manager.hpp"

#include <algorithm>
#include <cctype>

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "auth/microsoft_errors.hpp"
#include "auth/oauth_errors.hpp"
#include "auth/token_manager_jobs.hpp"
#include "common/backoff.hpp"
#include "common/clock.hpp"
#include "config/log.hpp"

namespace oauth_relay::auth {
namespace {

namespace asio = boost::asio;
using std::chrono::duration_cast;
using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

// The refresh timer re-checks at least this often even with nothing due
// (the wall clock may have jumped since the due times were computed).
constexpr std::chrono::minutes idle_wakeup{1};

system_clock::time_point from_unix(std::int64_t s) {
  return system_clock::time_point(seconds(s));
}

std::string missing_message(const std::string& account) {
  return "account " + account + " has no refresh token: run \"oauth-relayctl authorize " + account +
         "\"";
}

}  // namespace

std::string token_manager::key_of(std::string_view address) {
  std::string key(address);
  for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

token_result token_manager::failed(token_state state, std::string error) {
  token_result r;
  r.state = state;
  r.error = std::move(error);
  return r;
}

token_result token_manager::served(const std::string& access_token, token_state state) {
  token_result r;
  r.ok = true;
  r.access_token = access_token;
  r.state = state;
  return r;
}

std::string needs_reauth_message(const std::string& account) {
  return "account " + account + " needs re-authorization: run \"oauth-relayctl authorize " +
         account +
         "\" (the refresh token was revoked, or expired after 7 days because the OAuth consent "
         "screen is in Testing)";
}

bool names_reauth(std::string_view error, const std::string& account) {
  return error.starts_with("account " + account + " needs re-authorization: ");
}

std::string needs_reauth_message(const std::string& account,
                                 std::optional<std::int64_t> authorized_at, std::int64_t now) {
  if (!authorized_at) return needs_reauth_message(account);
  const advice why = explain_refresh_refusal(account, authorized_at, now);
  return "account " + account + " needs re-authorization: " + why.cause + ". To fix it, " + why.fix;
}

namespace {

// A refused refresh token: Microsoft's answer names its cause (AADSTS
// code); Google's is told apart by the time since consent.
std::string reauth_message(const std::string& address, config::provider_kind provider,
                           std::optional<std::int64_t> authorized_at, const token_response& r) {
  if (provider == config::provider_kind::microsoft) {
    if (const auto why = explain_microsoft_token_error(r, address)) {
      return "account " + address + " needs re-authorization: " + why->cause + ". To fix it, " +
             why->fix;
    }
  }
  return needs_reauth_message(address, authorized_at, now_seconds());
}

}  // namespace

token_manager::token_manager(boost::asio::any_io_executor loop,
                             boost::asio::any_io_executor blocking,
                             const config::settings& settings, token_store& store,
                             std::shared_ptr<http_client> http, token_manager_options options)
    : loop_(std::move(loop)),
      blocking_(std::move(blocking)),
      store_ops_(asio::make_strand(blocking_)),
      store_(store),
      http_(std::move(http)),
      options_(options),
      refresh_timer_(loop_),
      poll_timer_(loop_) {
  update_clients(settings);
  std::vector<config::account_settings> consented;
  for (const auto& a : settings.accounts) {
    if (a.service_account || a.app_only) continue;  // update_services
    account entry;
    entry.address = a.address;
    entry.provider = a.provider;
    accounts_.emplace(key_of(a.address), std::move(entry));
    consented.push_back(a);
  }
  update_services(settings);
  store_.ensure_accounts(consented);
  apply_rows(store_.load_all(), /*load=*/true);
}

token_manager::~token_manager() {
  stop();
  life_->destroyed = true;  // results still on their way are dropped
}

// ---------------------------------------------------------------- getting tokens

boost::asio::awaitable<token_result> token_manager::get_token(std::string address) {
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(token_result)>(
      [this](auto handler, std::string requested) {
        auto done = make_completion<token_result>(std::move(handler), loop_);
        if (stopped_) {
          done->post(failed(token_state::missing, "token manager stopped"));
          return;
        }
        account* a = find_account(requested);
        if (a == nullptr) {
          done->post(failed(token_state::missing, "account " + requested + " is not configured"));
          return;
        }
        serve(*a, std::move(done));
      },
      asio::use_awaitable, std::move(address));
}

void token_manager::serve(account& a, waiter done) {
  const auto now = system_clock::now();
  a.last_asked = steady_clock::now();
  if (!a.loaded) {
    a.waiters.push_back(std::move(done));
    return;
  }
  if (a.state == token_state::needs_reauth) {
    // The refusal's own sentence names its fix (a service account's
    // delegation, Microsoft's AADSTS cause, Google's Testing status).
    done->post(failed(token_state::needs_reauth,
                      a.in_memory() || names_reauth(a.last_error, a.address)
                          ? a.last_error
                          : needs_reauth_message(a.address, a.authorized_at, now_seconds())));
    return;
  }
  if (a.refresh_token.empty() && !a.in_memory()) {
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
  start_refresh(a);
  a.waiters.push_back(std::move(done));
}

void token_manager::serve_all(account& a) {
  auto waiters = std::move(a.waiters);
  a.waiters.clear();
  for (auto& w : waiters) serve(a, std::move(w));
}

// ---------------------------------------------------------------- refreshing

void token_manager::start_refresh(account& a) {
  if (a.in_memory()) {
    start_service_refresh(a);
    return;
  }
  a.refreshing = true;
  offload(
      blocking_,
      [client = client_for(a), refresh_token = a.refresh_token, life = life_] {
        return jobs::refresh(*client, refresh_token, life->stopping);
      },
      [this, key = key_of(a.address), generation = a.generation](jobs::refresh_answer answer) {
        on_refresh_answer(key, generation, std::move(answer));
      });
}

void token_manager::on_refresh_answer(const std::string& key, std::int64_t generation,
                                      jobs::refresh_answer answer) {
  if (stopped_) return;  // stop() answered the callers; a shutdown is not a refresh failure
  auto it = accounts_.find(key);
  if (it == accounts_.end()) return;  // removed by reconfigure meanwhile
  const bool reauth = answer.response.failure == token_failure::invalid_grant;
  const auto failed_state = reauth ? token_state::needs_reauth : token_state::refresh_failing;
  auto failed_error = reauth ? reauth_message(it->second.address, it->second.provider,
                                              it->second.authorized_at, answer.response)
                             : answer.response.error;
  auto shared = std::make_shared<const jobs::refresh_answer>(std::move(answer));
  with_store(
      [&store = store_, key, generation, r = shared, failed_state,
       failed_error = std::move(failed_error)] {
        return jobs::store_refresh(store, key, generation, *r, failed_state, failed_error);
      },
      [this, key, generation, r = shared](jobs::refresh_outcome out) {
        if (!stopped_) finish_refresh(key, generation, *r, out);
      });
}

void token_manager::finish_refresh(const std::string& key, std::int64_t generation,
                                   const jobs::refresh_answer& answer,
                                   const jobs::refresh_outcome& out) {
  auto it = accounts_.find(key);
  if (it == accounts_.end()) return;  // removed by reconfigure meanwhile
  account& a = it->second;
  const token_response& r = answer.response;
  a.refreshing = false;
  if (!out.store_error.empty()) log_store_error(a.address, out.store_error);

  if (out.superseded || a.generation != generation) {
    // oauth-relayctl stored a new refresh token while this one was in use: the
    // answer belongs to the old token. Start over with the new one.
    if (out.row && out.row->token_generation != a.generation) {
      adopt(a, *out.row);
    } else if (!out.row && out.store_error.empty() && a.generation == generation) {
      // The row is gone: nothing to refresh with until one is stored again
      // (the poll adopts any row whose generation differs from -1).
      a.refresh_token.clear();
      a.access_token.clear();
      a.generation = -1;
      set_state(a, token_state::missing);
    }
    serve_all(a);
    schedule();
    return;
  }

  auto waiters = std::move(a.waiters);
  a.waiters.clear();
  if (r.ok()) {
    a.access_token = r.access_token;
    a.expires_at = answer.expires_at;
    a.obtained_at = system_clock::now();
    const bool rotated = !r.refresh_token.empty() && r.refresh_token != a.refresh_token;
    if (!r.refresh_token.empty()) a.refresh_token = r.refresh_token;
    if (out.store_error.empty()) a.generation = out.generation;
    a.failures = 0;
    a.client_refused = false;
    a.last_error.clear();
    ++a.refreshes_ok;
    set_state(a, token_state::valid);
    log::info("token_refreshed")
        .kv("account", a.address)
        .kv("expires_in", static_cast<std::int64_t>(r.expires_in.count()))
        .kv("refresh_token", rotated ? "rotated" : "kept");
    for (auto& w : waiters) w->post(served(a.access_token, a.state));
    schedule();
    return;
  }

  ++a.refreshes_failed;
  if (r.failure == token_failure::invalid_grant) {
    // The access token was issued under the dead grant; Google revokes both.
    a.access_token.clear();
    a.obtained_at.reset();
    a.last_error = reauth_message(a.address, a.provider, a.authorized_at, r);
    set_state(a, token_state::needs_reauth);
    // Microsoft's answer names its cause (AADSTS code): the log says it.
    const auto why = a.provider == config::provider_kind::microsoft
                         ? explain_microsoft_token_error(r, a.address)
                         : std::nullopt;
    log::error("token_refresh_failed")
        .kv("account", a.address)
        .kv("state", to_string(a.state))
        .kv("reason", why ? why->cause : r.error)
        .kv("hint", why ? why->fix : "run \"oauth-relayctl authorize " + a.address + "\"");
    for (auto& w : waiters) w->post(failed(a.state, a.last_error));
    schedule();
    return;
  }

  a.failures = out.store_error.empty() ? out.failures : a.failures + 1;
  a.client_refused = r.failure == token_failure::invalid_client;
  // A refused client will not fix itself: retry rarely until the config changes.
  const auto delay = a.client_refused
                         ? options_.retry_max
                         : backoff(options_.retry_initial, options_.retry_max, a.failures);
  retry_later(a, waiters, r.error, delay,
              a.client_refused ? log::level::error : log::level::warning);
}

void token_manager::retry_later(account& a, const std::vector<waiter>& waiters, std::string error,
                                std::chrono::nanoseconds delay, log::level level) {
  a.next_retry = steady_clock::now() + delay;
  a.last_error = std::move(error);
  set_state(a, token_state::refresh_failing);
  {
    log::line line(level, "token_refresh_failed");
    line.kv("account", a.address);
    if (a.service) line.kv("service_account", a.service->client_email);
    line.kv("state", to_string(a.state))
        .kv("reason", a.last_error)
        .kv("failures", a.failures)
        .kv("retry_in_ms",
            static_cast<std::int64_t>(duration_cast<std::chrono::milliseconds>(delay).count()));
  }
  const auto now = system_clock::now();
  for (const auto& w : waiters) {
    // A token that has not lapsed yet still authenticates.
    if (!a.access_token.empty() && a.expires_at > now) {
      w->post(served(a.access_token, a.state));
    } else {
      w->post(failed(a.state, "account " + a.address + ": " + a.last_error));
    }
  }
  schedule();
}

std::chrono::nanoseconds token_manager::lead(const account& a, std::chrono::seconds wanted) const {
  std::chrono::nanoseconds l = wanted;
  // Short-lived tokens (tests, unusual endpoints) would otherwise be
  // refreshed continuously.
  if (a.obtained_at) l = std::min(l, (a.expires_at - *a.obtained_at) / 2);
  return l;
}

// ---------------------------------------------------------------- state

void token_manager::set_state(account& a, token_state state) {
  if (a.state == state) return;
  a.state = state;
  if (on_change_) {
    // Posted: the callback may call back in (get_token) while this one is mid-change.
    asio::post(loop_, [callback = on_change_, address = a.address, state] {
      (*callback)(address, state);
    });
  }
}

void token_manager::fail_waiters(account& a, const std::string& error) {
  for (auto& w : a.waiters) w->post(failed(a.state, error));
  a.waiters.clear();
}

void token_manager::adopt(account& a, const account_record& row) {
  const bool first = !a.loaded;
  a.loaded = true;
  a.refresh_token = row.refresh_token;
  a.access_token = row.access_token;
  a.expires_at = from_unix(row.access_expires_at);
  a.obtained_at.reset();
  a.generation = row.token_generation;
  a.authorized_at = row.authorized_at;
  a.last_error = row.last_error;
  if (row.last_delivery)
    a.last_delivery = std::max(a.last_delivery.value_or(0), *row.last_delivery);
  a.stored_delivery = row.last_delivery;
  a.failures = row.refresh_failures;
  a.client_refused = false;
  a.next_retry = steady_clock::now();  // a new token (or a restart) deserves a try now
  token_state state = row.state;
  if (row.refresh_token.empty()) {
    state = token_state::missing;
  } else if (state == token_state::missing) {
    state = token_state::expired;
  }
  set_state(a, state);
  if (!first) {
    log::notice("token_stored")
        .kv("account", a.address)
        .kv("generation", row.token_generation)
        .kv("state", to_string(a.state));
  }
  if (!a.refreshing && !a.waiters.empty()) serve_all(a);
}

token_manager::changes token_manager::apply_rows(const std::vector<account_record>& rows,
                                                 bool load) {
  changes changed;
  for (const auto& row : rows) {
    auto it = accounts_.find(key_of(row.address));
    if (it == accounts_.end()) continue;
    account& a = it->second;
    if (a.in_memory()) continue;  // a row left from before it became a service account
    // An account not loaded yet waits for its own load, which is queued.
    if (!a.loaded && !load) continue;
    // Same generation: no new refresh token, whoever wrote the row last. The
    // manager's own writes were applied before any poll that read them.
    if (a.loaded && row.token_generation == a.generation) continue;
    const bool was_loaded = a.loaded;
    adopt(a, row);
    if (was_loaded) changed.emplace_back(a.address, a.state);
  }
  return changed;
}

void token_manager::log_store_error(const std::string& account, const std::string& error) const {
  log::error("token_store_failed").kv("account", account).kv("reason", error);
}

// ---------------------------------------------------------------- background

void token_manager::poll(std::function<void(changes)> done) {
  with_store([&store = store_] { return jobs::read_rows(store); },
             [this, done = std::move(done)](jobs::rows_read read) {
               changes changed;
               if (!stopped_) {
                 if (!read.error.empty()) {
                   log::warning("token_store_poll_failed").kv("reason", read.error);
                 } else {
                   changed = apply_rows(read.rows, /*load=*/false);
                 }
                 schedule();
               }
               done(std::move(changed));
             });
}

void token_manager::arm_poll() {
  if (stopped_) return;
  poll_timer_.expires_after(options_.poll_interval);
  poll_timer_.async_wait([this, life = life_](boost::system::error_code ec) {
    if (ec || life->destroyed || stopped_) return;
    poll([this](const changes&) { arm_poll(); });
  });
}

void token_manager::reload(std::function<void(changes)> done) {
  if (stopped_) {
    asio::post(loop_, [done = std::move(done)] { done({}); });
    return;
  }
  for (auto& [key, a] : accounts_) {
    if (a.in_memory() && a.state != token_state::valid) a.next_retry = steady_clock::now();
  }
  poll(std::move(done));
}

void token_manager::schedule() {
  if (!started_ || stopped_) return;
  const auto now = steady_clock::now();
  const auto now_sys = system_clock::now();
  steady_time next = now + idle_wakeup;
  for (auto& [key, a] : accounts_) {
    if (!a.loaded || a.refreshing) continue;
    // An account authorized by consent waits for a person; a service account
    // is asked again now and then, since its fix is made in Google's consoles.
    if (!a.in_memory() && (a.refresh_token.empty() || a.state == token_state::needs_reauth)) {
      continue;
    }
    const bool failing =
        a.state == token_state::refresh_failing || a.state == token_state::needs_reauth;
    // Retries go on while mail may wait; keeping a token fresh only while used.
    if (a.on_demand && !failing && now - a.last_asked > options_.idle_mailbox) continue;
    steady_time due;
    if (failing) {
      due = a.next_retry;
    } else if (a.access_token.empty()) {
      due = now;
    } else {
      due = now + duration_cast<steady_clock::duration>(
                      (a.expires_at - lead(a, options_.refresh_ahead)) - now_sys);
    }
    if (due <= now) {
      start_refresh(a);
    } else {
      next = std::min(next, due);
    }
  }
  // Moving the expiry cancels the wait set by the previous call.
  refresh_timer_.expires_at(next);
  refresh_timer_.async_wait([this, life = life_](boost::system::error_code ec) {
    if (ec || life->destroyed) return;
    schedule();
  });
}

void token_manager::start() {
  if (started_ || stopped_) return;
  started_ = true;
  schedule();
  arm_poll();
}

void token_manager::stop() {
  if (stopped_) return;
  stopped_ = true;
  life_->stopping = true;  // requests in flight give up
  refresh_timer_.cancel();
  poll_timer_.cancel();
  for (auto& [key, a] : accounts_) {
    a.refreshing = false;
    fail_waiters(a, "token manager stopped");
  }
}

// ---------------------------------------------------------------- from the delivery side

void token_manager::invalidate(const std::string& account_address,
                               const std::string& access_token) {
  auto it = accounts_.find(key_of(account_address));
  if (it == accounts_.end() || stopped_) return;
  account& a = it->second;
  if (a.access_token.empty() || a.access_token != access_token) return;  // already replaced
  a.access_token.clear();
  a.obtained_at.reset();
  if (a.state == token_state::valid) set_state(a, token_state::expired);
  log::info("token_invalidated").kv("account", a.address);
  if (a.in_memory()) {
    schedule();  // no row: service tokens live in memory only
    return;
  }
  with_store([&store = store_, key = it->first,
              access_token] { return jobs::clear_access_token(store, key, access_token); },
             [this, key = it->first](std::string error) {
               if (!error.empty()) log_store_error(key, error);
             });
  schedule();  // refreshed now rather than at the next get
}

void token_manager::on_state_change(
    std::function<void(const std::string& account, token_state)> callback) {
  on_change_ = callback
                   ? std::make_shared<const std::function<void(const std::string&, token_state)>>(
                         std::move(callback))
                   : nullptr;
}

}  // namespace oauth_relay::auth
