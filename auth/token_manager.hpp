// Access tokens for the delivery scheduler: served from memory, refreshed on
// worker threads (never on the event loop), ahead of expiry in the background,
// one refresh at a time per account; picks up tokens oauth-relayctl stores.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/http_client.hpp"
#include "auth/token_client.hpp"
#include "auth/token_source.hpp"
#include "auth/token_store.hpp"
#include "config/config.hpp"

namespace oauth_relay::auth {

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
  // How often the store is read for tokens stored by oauth-relayctl.
  std::chrono::milliseconds poll_interval{2'000};
  std::size_t workers = 4;  // concurrent token endpoint requests
  std::chrono::milliseconds connect_timeout = default_connect_timeout;
  std::chrono::milliseconds total_timeout = default_total_timeout;
};

// What async_get_token tells an account that must be authorized again.
std::string needs_reauth_message(const std::string& account);

class token_manager {
 public:
  // Creates the rows of configured accounts that have none and loads them
  // (blocking: call at startup). Throws token_store_error.
  token_manager(boost::asio::any_io_executor loop, const config::settings& settings,
                token_store& store, std::shared_ptr<http_client> http,
                token_manager_options options = {});
  ~token_manager();  // stop()
  token_manager(const token_manager&) = delete;
  token_manager& operator=(const token_manager&) = delete;

  // Completes, on the handler's executor (default: `loop`), with a usable
  // access token, refreshing first when there is none or it expires within
  // min_validity. Concurrent callers share one refresh. Accounts in
  // needs_reauth or without a refresh token complete at once with ok=false.
  // Signature: void(token_result).
  template <typename CompletionToken>
  auto async_get_token(std::string account, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(token_result)>(
        [this](auto handler, std::string a) {
          using handler_type = decltype(handler);
          get_token(a, std::make_unique<completion_impl<handler_type>>(std::move(handler), loop_));
        },
        token, std::move(account));
  }

  // The upstream refused `access_token` (535 after the XOAUTH2 exchange):
  // forget it so the next get refreshes. A token already replaced is ignored.
  void invalidate(const std::string& account, const std::string& access_token);

  // A message went out through `account` at `when` (unix seconds).
  void record_delivery(const std::string& account, std::int64_t when);

  // Background work: refreshes ahead of expiry, retries refresh_failing
  // accounts with backoff and polls the store for new refresh tokens.
  void start();
  // Abandons requests in flight and waits for the worker threads. Pending
  // callers complete with ok=false. Final.
  void stop();

  // New oauth settings take effect for the next refresh (and end the pause of
  // accounts refused with invalid_client); accounts are added and removed.
  void reconfigure(const config::settings& settings);

  std::vector<account_status> status() const;

  // Reads the store now instead of at the next poll (a token oauth-relayctl
  // just stored), on a worker thread; `done` runs on `loop` with the accounts
  // whose stored token changed and their new state.
  void reload(std::function<void(std::vector<std::pair<std::string, token_state>> changed)> done);

  // Called on `loop` whenever an account's stored state changes.
  void on_state_change(std::function<void(const std::string& account, token_state)> callback);

 private:
  // A get's completion handler, type-erased, run on its own executor.
  // (Boost 1.81's any_completion_handler recurses without end with awaitable handlers.)
  struct completion {
    virtual ~completion() = default;
    virtual void post(token_result result) = 0;
  };
  template <typename Handler>
  struct completion_impl final : completion {
    completion_impl(Handler h, const boost::asio::any_io_executor& fallback)
        : handler(std::move(h)),
          // Tracked work keeps the event loop running while the refresh is pending.
          work(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                   boost::asio::execution::outstanding_work.tracked)) {}
    void post(token_result result) override {
      auto w = std::move(work);
      boost::asio::post(w, [h = std::move(handler), r = std::move(result)]() mutable {
        std::move(h)(std::move(r));
      });
    }
    Handler handler;
    decltype(boost::asio::prefer(
        boost::asio::get_associated_executor(std::declval<Handler&>(),
                                             std::declval<const boost::asio::any_io_executor&>()),
        boost::asio::execution::outstanding_work.tracked)) work;
  };
  using completion_ptr = std::unique_ptr<completion>;
  using system_time = std::chrono::system_clock::time_point;
  using steady_time = std::chrono::steady_clock::time_point;

  struct account {
    std::string address;  // as configured
    bool loaded = false;  // false until its row has been read
    token_state state = token_state::missing;
    std::string refresh_token;  // secret
    std::string access_token;   // secret
    system_time expires_at{};
    std::optional<system_time> obtained_at;  // when this process got the access token
    std::string last_error;
    std::optional<std::int64_t> last_delivery;
    int failures = 0;
    std::int64_t generation = -1;  // of the stored refresh token; -1 before loading
    bool refreshing = false;
    bool client_refused = false;  // invalid_client: waits for new settings or retry_max
    steady_time next_retry{};
    std::uint64_t refreshes_ok = 0;
    std::uint64_t refreshes_failed = 0;
    std::vector<completion_ptr> waiters;
  };
  struct refresh_outcome;

  void get_token(const std::string& address, completion_ptr done);
  // Answers `done` from the account's state, or queues it (starting a refresh
  // when needed). Called with mutex_ held.
  void serve_locked(account& a, completion_ptr done);
  void start_refresh_locked(account& a);
  void run_refresh(std::string key, std::string refresh_token, std::int64_t generation,
                   std::shared_ptr<const token_client> client);
  void finish_refresh(const std::string& key, std::int64_t generation, const token_response& r,
                      const refresh_outcome& stored);
  void adopt_locked(account& a, const account_record& row);
  void set_state_locked(account& a, token_state state);
  void fail_waiters_locked(account& a, const std::string& error);
  void load_accounts(const std::vector<config::account_settings>& accounts);
  // Adopts rows whose generation changed; returns those accounts and states.
  std::vector<std::pair<std::string, token_state>> poll_store();
  // Starts due background refreshes; returns when the next one is due.
  steady_time schedule_locked();
  void scheduler_loop();
  std::chrono::milliseconds backoff(int failures) const;
  std::chrono::nanoseconds lead(const account& a, std::chrono::seconds wanted) const;

  boost::asio::any_io_executor loop_;
  token_store& store_;
  std::shared_ptr<http_client> http_;
  const token_manager_options options_;
  boost::asio::thread_pool pool_;
  std::atomic<bool> stopping_{false};
  // Held around each store write and the poll's read-and-apply, so the poll
  // never mistakes this process's own write for one by oauth-relayctl.
  std::mutex persist_mutex_;

  mutable std::mutex mutex_;  // everything below
  std::condition_variable wake_;
  std::shared_ptr<const token_client> client_;
  config::oauth_settings oauth_;
  std::map<std::string, account> accounts_;  // by lower-cased address
  std::shared_ptr<const std::function<void(const std::string&, token_state)>> on_change_;
  bool started_ = false;
  bool stopped_ = false;
  std::thread scheduler_;
};

}  // namespace oauth_relay::auth
