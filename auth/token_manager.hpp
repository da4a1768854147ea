// Access tokens for the delivery scheduler: kept on the event loop, refreshed
// ahead of expiry by timers, one refresh at a time per account; picks up tokens
// oauth-relayctl stores. Only libcurl and SQLite calls leave the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "auth/http_client.hpp"
#include "auth/token_client.hpp"
#include "auth/token_source.hpp"
#include "auth/token_store.hpp"
#include "common/completion.hpp"
#include "config/config.hpp"
#include "config/log.hpp"

namespace oauth_relay::auth {
namespace jobs {
struct refresh_answer;
struct refresh_outcome;
}  // namespace jobs

struct token_manager_options {
  // A token this close to expiry is refreshed before it is handed out, so an
  // SMTP session never starts with one about to lapse.
  std::chrono::seconds min_validity{60};
  // The background refresh runs this long before expiry. Both leads shrink to
  // half the token's lifetime for short-lived tokens.
  std::chrono::seconds refresh_ahead{300};
  // Backoff for refresh_failing accounts: doubling from initial up to max.
  std::chrono::milliseconds retry_initial{30'000};
  std::chrono::milliseconds retry_max{600'000};
  // A domain pattern's mailbox not asked for in this long is no longer
  // refreshed ahead: its next message waits for one token request instead.
  std::chrono::milliseconds idle_mailbox{3'600'000};
  // How often the store is read for tokens stored by oauth-relayctl.
  std::chrono::milliseconds poll_interval{2'000};
  std::chrono::milliseconds connect_timeout = default_connect_timeout;
  std::chrono::milliseconds total_timeout = default_total_timeout;
};

// What get_token tells an account that must be authorized again; with the
// time it was authorized (unix seconds) the cause is told apart: about seven
// days after consent, the consent screen's Testing status comes first.
std::string needs_reauth_message(const std::string& account);
std::string needs_reauth_message(const std::string& account,
                                 std::optional<std::int64_t> authorized_at, std::int64_t now);
// Whether `error` is such a sentence for `account`, made when the refusal
// came (it then says more than needs_reauth_message can later: Microsoft's
// cause, or the age of the consent at the time).
bool names_reauth(std::string_view error, const std::string& account);

// Every member function is called on `loop`, which one thread runs; all state
// lives there, so there is no lock. Token endpoint requests and store reads
// and writes are posted to `blocking` and report back to `loop`.
class token_manager final : public token_source {
 public:
  using changes = std::vector<std::pair<std::string, token_state>>;

  // Creates the rows of configured accounts that have none and loads them
  // (blocking: call at startup); service accounts have no row, their tokens
  // live in memory only. Throws token_store_error. `store` and `http`
  // are used on `blocking` and must outlive the work posted there: the owner
  // joins (or stops running) `blocking` before they go.
  token_manager(boost::asio::any_io_executor loop, boost::asio::any_io_executor blocking,
                const config::settings& settings, token_store& store,
                std::shared_ptr<http_client> http, token_manager_options options = {});
  ~token_manager() override;  // stop()
  token_manager(const token_manager&) = delete;
  token_manager& operator=(const token_manager&) = delete;

  // token_source. get_token answers from memory, or refreshes first when
  // there is no token or it expires within min_validity; concurrent callers
  // share one refresh. Accounts in needs_reauth or without a refresh token
  // are answered at once with ok=false.
  boost::asio::awaitable<token_result> get_token(std::string account) override;
  void invalidate(const std::string& account, const std::string& access_token) override;
  void record_delivery(const std::string& account, std::int64_t when) override;
  std::vector<account_status> status() const override;

  // Background work: refreshes ahead of expiry, retries refresh_failing
  // accounts with backoff and polls the store for new refresh tokens.
  void start();
  // Final. Pending callers complete with ok=false; a request in flight is
  // abandoned (http_options::cancel) and its answer ignored. Store writes
  // already asked for still run on `blocking`.
  void stop();

  // New oauth settings take effect for the next refresh (and end the pause of
  // accounts refused with invalid_client); accounts are added and removed.
  void reconfigure(const config::settings& settings);

  // Reads the store now instead of at the next poll (a token oauth-relayctl
  // just stored); `done` runs on `loop` with the accounts whose stored token
  // changed and their new state (none once stopped). Service accounts that
  // failed are asked again at once (their fix is made in Google's consoles).
  void reload(std::function<void(changes changed)> done);

  // Called on `loop` whenever an account's state changes.
  void on_state_change(std::function<void(const std::string& account, token_state)> callback);

 private:
  using system_time = std::chrono::system_clock::time_point;
  using steady_time = std::chrono::steady_clock::time_point;
  using waiter = completion_ptr<token_result>;

  struct account {
    std::string address;  // as configured (a pattern's mailbox: as the sender wrote it)
    // A Google Workspace service account's key: tokens by the JWT bearer
    // grant, kept in memory only, no row in the store. Null: consent.
    std::shared_ptr<const config::service_account_key> service;
    config::provider_kind provider = config::provider_kind::google;  // whose token endpoint
    // Microsoft's app_only: tokens by the client credentials grant, kept in
    // memory only, no row in the store (as a service account's).
    bool app_only = false;
    // No refresh token and no row: the relay gets its tokens by itself.
    bool in_memory() const { return service != nullptr || app_only; }
    // A mailbox of a domain pattern: kept fresh ahead of expiry only while
    // it is asked for (a domain may have many senders used once).
    bool on_demand = false;
    steady_time last_asked{};
    bool loaded = false;  // false until its row has been read
    token_state state = token_state::missing;
    secret_string refresh_token;
    secret_string access_token;
    system_time expires_at{};
    std::optional<system_time> obtained_at;  // when this process got the access token
    std::string last_error;
    std::optional<std::int64_t> last_delivery;
    // last_delivery as the store has it, and whether a write of it is on its
    // way: one write at a time, and none while the second is the same (a
    // drain delivers thousands a second; a synced write each would queue up).
    std::optional<std::int64_t> stored_delivery;
    bool delivery_writing = false;
    std::optional<std::int64_t> authorized_at;  // unix seconds, from the stored row
    int failures = 0;
    std::int64_t generation = -1;  // of the stored refresh token; -1 before loading
    bool refreshing = false;       // from the request until its store write is applied
    bool client_refused = false;   // invalid_client: waits for new settings or retry_max
    steady_time next_retry{};
    std::uint64_t refreshes_ok = 0;
    std::uint64_t refreshes_failed = 0;
    std::vector<waiter> waiters;
  };
  // Shared with work in flight, which may finish after the manager is gone.
  struct lifetime {
    std::atomic<bool> stopping{false};  // read by requests on `blocking` as their cancel flag
    bool destroyed = false;             // on `loop` only
  };

  // Addresses compare without case, as the accounts table does (COLLATE NOCASE).
  static std::string key_of(std::string_view address);
  static token_result failed(token_state state, std::string error);
  static token_result served(const std::string& access_token, token_state state);

  // Runs `job` on `executor`, then `then(result)` on the loop while the
  // manager exists.
  template <typename Executor, typename Job, typename Then>
  void offload(const Executor& executor, Job job, Then then);
  // A store operation: one at a time, in order (see store_ops_).
  template <typename Job, typename Then>
  void with_store(Job job, Then then);

  // The entry of a configured address, or of a mailbox a domain pattern
  // covers (made on first use); nullptr when neither.
  account* find_account(const std::string& address);
  // Service accounts (token_manager_service.cpp): entries, keys and patterns
  // as `settings` has them; their refresh and its answer.
  void update_services(const config::settings& settings);
  void start_service_refresh(account& a);
  void finish_service_refresh(const std::string& key,
                              std::shared_ptr<const config::service_account_key> used,
                              jobs::refresh_answer answer);

  // New token clients for the providers whose settings changed; true when any did.
  bool update_clients(const config::settings& settings);
  const std::shared_ptr<const token_client>& client_for(const account& a) const {
    return a.provider == config::provider_kind::microsoft && microsoft_client_ ? microsoft_client_
                                                                               : client_;
  }
  // Writes a.last_delivery to the store unless it is there or on its way.
  void store_last_delivery(account& a, const std::string& key);
  void serve(account& a, waiter done);
  void serve_all(account& a);
  void start_refresh(account& a);
  void on_refresh_answer(const std::string& key, std::int64_t generation,
                         jobs::refresh_answer answer);
  void finish_refresh(const std::string& key, std::int64_t generation,
                      const jobs::refresh_answer& answer, const jobs::refresh_outcome& stored);
  // A refresh that may work later: retried after `delay`, logged at `level`;
  // each waiter still gets the access token while it has not lapsed.
  void retry_later(account& a, const std::vector<waiter>& waiters, std::string error,
                   std::chrono::nanoseconds delay, log::level level);
  void adopt(account& a, const account_record& row);
  void set_state(account& a, token_state state);
  void fail_waiters(account& a, const std::string& error);
  // Adopts rows of loaded accounts whose generation changed (and, with
  // `load`, rows of accounts not loaded yet); returns the loaded ones that changed.
  changes apply_rows(const std::vector<account_record>& rows, bool load);
  // Reads the store and adopts what changed; `done` gets those accounts.
  void poll(std::function<void(changes)> done);
  // Starts due background refreshes and sets the timer for the next one.
  void schedule();
  void arm_poll();
  void log_store_error(const std::string& key, const std::string& error) const;
  std::chrono::nanoseconds lead(const account& a, std::chrono::seconds wanted) const;

  boost::asio::any_io_executor loop_;
  boost::asio::any_io_executor blocking_;
  // Store reads and writes run one at a time, in the order they were asked
  // for, and each posts its result to the loop before the next starts; the
  // single-threaded loop therefore applies them in the order the database saw
  // them. That is what keeps the poll from mistaking this process's own write
  // (a rotated refresh token bumps the generation) for one by oauth-relayctl:
  // a poll that read the row after the write is applied after the write's
  // result has set the account's generation.
  boost::asio::strand<boost::asio::any_io_executor> store_ops_;
  token_store& store_;
  std::shared_ptr<http_client> http_;
  const token_manager_options options_;
  std::shared_ptr<lifetime> life_ = std::make_shared<lifetime>();

  // Each provider's token endpoint: Google's (oauth), and Microsoft's when
  // providers.microsoft is configured (null otherwise).
  std::shared_ptr<const token_client> client_;
  config::oauth_settings oauth_;
  std::shared_ptr<const token_client> microsoft_client_;
  std::optional<config::oauth_settings> microsoft_oauth_;
  std::map<std::string, account> accounts_;  // by lower-cased address
  // Domain patterns ("*@example.com") of service accounts, in config order.
  std::vector<std::pair<std::string, std::shared_ptr<const config::service_account_key>>> patterns_;
  std::shared_ptr<const std::function<void(const std::string&, token_state)>> on_change_;
  boost::asio::steady_timer refresh_timer_;
  boost::asio::steady_timer poll_timer_;
  bool started_ = false;
  bool stopped_ = false;
};

template <typename Executor, typename Job, typename Then>
void token_manager::offload(const Executor& executor, Job job, Then then) {
  // Tracked work keeps the loop's run() going while the job is away.
  auto loop = boost::asio::prefer(loop_, boost::asio::execution::outstanding_work.tracked);
  boost::asio::post(executor, [job = std::move(job), then = std::move(then), loop = std::move(loop),
                               life = life_]() mutable {
    auto result = job();
    boost::asio::post(loop, [then = std::move(then), result = std::move(result),
                             life = std::move(life)]() mutable {
      if (!life->destroyed) then(std::move(result));
    });
  });
}

template <typename Job, typename Then>
void token_manager::with_store(Job job, Then then) {
  offload(store_ops_, std::move(job), std::move(then));
}

}  // namespace oauth_relay::auth
