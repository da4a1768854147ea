// Moves queued mail to Gmail: takes due messages from the spool, groups them
// by account, and runs up to upstream.max_connections authenticated
// connections per account, each reused for up to
// upstream.max_messages_per_connection messages. What each attempt means is
// decided by decision.hpp; the outcome goes back to the spool (with a bounce
// when a message is finished and something failed). The spool, the tokens and
// the upstream are interfaces, so unit tests put stand-ins behind them.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_set>
#include <variant>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "auth/token_source.hpp"
#include "common/clock.hpp"
#include "config/config.hpp"
#include "relay/delivery/decision.hpp"
#include "relay/delivery/parking.hpp"
#include "relay/delivery/sending_limits.hpp"
#include "relay/delivery/upstream.hpp"
#include "relay/spool/delivery_queue.hpp"

namespace oauth_relay::relay {

// Figures for the health socket and metrics.
struct delivery_counters {
  std::map<std::string, std::uint64_t> delivered_by_account;  // messages fully delivered
  std::uint64_t bounced = 0;                                  // bounces generated
  std::uint64_t attempts_delivered = 0;                       // delivery attempts by outcome
  std::uint64_t attempts_deferred = 0;
  std::uint64_t attempts_failed = 0;
  std::uint64_t upstream_logins = 0;
  std::size_t upstream_connections_active = 0;
  std::string last_upstream_error;  // empty once a delivery succeeds again
  // Per account, for health: temporary failures in a row (a connection that
  // could not be opened or logged into, an attempt that delivered nothing and
  // was deferred), reset by any delivery, and the last such error.
  std::map<std::string, std::uint64_t> failures_in_a_row;
  std::map<std::string, std::string> last_error_by_account;
  // Messages failed because their content was gone for good (spool_errc::
  // lost), when the last was (unix seconds) and which with why; reads of a
  // content that failed and were retried later.
  std::uint64_t messages_lost = 0;
  std::int64_t last_lost_at = 0;
  std::string last_lost;
  std::uint64_t content_unreadable = 0;
  std::uint64_t delay_warnings = 0;  // queue.delay_warning notices generated
};

// An account's upstream that could not be connected to (refused, timed
// out, TLS failed): one event with a start, a periodic summary, and an end,
// not a line per message and attempt.
struct upstream_outage {
  std::int64_t since_ms = 0;  // the first failed connection
  std::string reason;         // the last failure, one line
  std::uint64_t failed_connections = 0;
  std::int64_t last_summary_ms = 0;
  message_id_set deferred;  // messages that waited for it
};

class delivery_scheduler {
 public:
  // Wall-clock unix milliseconds: what the spool's due times are in.
  using clock = std::function<std::int64_t()>;

  // `queue`, `tokens` and `upstream` must outlive the scheduler; `now` is
  // common/clock.hpp's now_ms unless a test pins the time.
  delivery_scheduler(boost::asio::any_io_executor executor, delivery_queue& queue,
                     auth::token_source& tokens, upstream_connector& upstream,
                     const config::settings& settings, clock now = &oauth_relay::now_ms);
  ~delivery_scheduler();
  delivery_scheduler(const delivery_scheduler&) = delete;
  delivery_scheduler& operator=(const delivery_scheduler&) = delete;

  void start();
  // New mail was stored, or an account may be usable again: look now.
  void wake();
  // Ends every hold Gmail's answers put on the accounts (an administrator's
  // retry): the next answer holds again; the accounts' limits still apply.
  void lift_holds();
  // Called on the executor with each delivery attempt's duration in seconds
  // (the metrics' histogram).
  void on_delivery_duration(std::function<void(double)> observer);
  // An account's token state changed; a usable account gets its waiting mail at once.
  void account_state_changed(const std::string& account, auth::token_state state);
  // New settings, and the connector built for them: new connections use it,
  // open ones finish with what they were made with. `upstream` must outlive
  // the scheduler or the next reconfigure.
  void reconfigure(const config::settings& settings, upstream_connector& upstream);
  // Starts no new work and closes upstream connections; queued mail stays queued.
  void stop();

  // For /queue/delete. Messages waiting in memory for a connection are taken
  // back and deleted at once with the unclaimed ones; a message in the middle
  // of a delivery attempt is deleted right after that attempt is recorded, so
  // it is never half-deleted (it counts as deleted in the answer). `done` runs
  // on the event loop.
  void delete_messages(std::vector<std::string> ids,
                       std::function<void(spool_result<queue_change>)> done);

  const delivery_counters& counters() const { return counters_; }
  // Each account's sending state and what it sent in the last 24 hours.
  sending_status sending(const std::string& account);
  // The accounts whose upstream cannot be reached now.
  const std::map<std::string, upstream_outage>& outages() const { return outages_; }
  // upstream.outage_alert_after as configured now (reloads included).
  std::chrono::seconds outage_alert_after() const { return settings_.upstream.outage_alert_after; }

 private:
  struct account_queue;
  using connection_ptr = std::unique_ptr<upstream_connection>;

  boost::asio::awaitable<void> dispatch_loop();
  // Reads the accounts' sending record and holds back from the spool.
  boost::asio::awaitable<void> load_sending_history();
  // Puts the account of `q` on `hold`: stores it (when Gmail's), and parks
  // its mail waiting in memory (and `also`) until the hold ends.
  boost::asio::awaitable<void> hold_account(std::shared_ptr<account_queue> q,
                                            const account_hold& hold,
                                            std::optional<queued_message> also);
  // Logs and forgets the holds that ended by `now_ms`.
  boost::asio::awaitable<void> resume_ended_holds(std::int64_t now_ms);
  const config::account_limits& limits_of(const std::string& account) const;
  boost::asio::awaitable<void> worker(std::shared_ptr<account_queue> queue);
  // Why a connection could not be had; `unreachable` when the upstream
  // itself could not be connected to (not a token or a login).
  struct connect_failure {
    not_sent what;
    bool unreachable = false;
  };
  // An authenticated connection for `account`, or why there is none.
  boost::asio::awaitable<std::variant<connection_ptr, connect_failure>> open_connection(
      const std::string& account);
  // The outage of `account`'s upstream goes on (logged when it starts and
  // then every outage_summary_every), with `messages` deferred by it.
  void note_unreachable(const std::string& account, const std::string& reason,
                        const std::deque<queued_message>& messages);
  void note_reachable(const std::string& account);
  std::size_t waiting_total() const;  // claimed messages not yet on a connection
  // A content that could not be opened or read to its end: lost (a bounce
  // now) or failed (a retry after the backoff).
  boost::asio::awaitable<void> content_failed(const queued_message& message,
                                              const spool_failure& failure);
  boost::asio::awaitable<void> record_later(queued_message message, send_result result,
                                            std::optional<message_content> content,
                                            std::optional<std::int64_t> held_until);
  // Stores what the attempt decided, with the bounce or delay warning it
  // makes, which quotes the original: from `content` when given (it must
  // outlive the call), else read from the spool again.
  // `held_until`: the account's hold, when the attempt put one on it.
  boost::asio::awaitable<void> record(const queued_message& message, attempt what,
                                      message_content* content,
                                      std::optional<std::int64_t> held_until = std::nullopt,
                                      bool quiet = false);
  // record() of a message no one else holds (spawned on its own).
  boost::asio::awaitable<void> record_owned(queued_message message, attempt what);
  // What a notice quotes of `message`: its first bounce_quote_limit octets;
  // nothing when they cannot be read.
  boost::asio::awaitable<std::optional<std::string>> quote_of(const queued_message& message,
                                                              message_content* content);
  // `quiet`: no line for the message (an outage logs itself as one event).
  void count(const queued_message& message, const attempt_report& report, bool bounced,
             std::int64_t now, bool quiet = false);
  void start_workers(const std::shared_ptr<account_queue>& queue);
  std::shared_ptr<account_queue> queue_for(const std::string& account);
  boost::asio::awaitable<void> remove_now(std::vector<std::string> ids, std::size_t later,
                                          std::function<void(spool_result<queue_change>)> done);
  boost::asio::awaitable<void> delete_doomed(const std::string& id);
  boost::asio::awaitable<void> release_account(std::string account);

  boost::asio::any_io_executor executor_;
  delivery_queue& queue_;
  auth::token_source& tokens_;
  upstream_connector* upstream_;  // never null; replaced by reconfigure
  config::settings settings_;
  delivery_policy policy_;
  clock now_;
  account_parking parking_;
  sending_limits limits_;
  std::map<std::string, account_hold> announced_;  // holds logged and not yet ended
  std::map<std::string, upstream_outage> outages_;
  std::map<std::string, std::shared_ptr<account_queue>> queues_;
  message_id_set claimed_;                  // ids waiting in a queue or being delivered
  std::unordered_set<std::string> doomed_;  // claimed ids to delete once their attempt ends
  // Ids the spool is deleting now: no look for due mail may hand them to a
  // worker before the delete is done.
  message_id_set removing_;
  // Where in arrival order the last look for fresh mail ended (unset until
  // the first look, which starts it at the newest queued message).
  std::optional<std::int64_t> arrived_through_;
  std::set<std::string> releasing_;      // accounts whose mail release_account is making due
  std::set<std::string> release_again_;  // ... and that changed state again meanwhile
  std::set<upstream_connection*> open_;  // for stop()
  boost::asio::steady_timer wake_timer_;
  bool wake_pending_ = false;
  bool stopping_ = false;
  std::uint64_t next_connection_ = 1;
  delivery_counters counters_;
  std::function<void(double)> duration_observer_;
};

}  // namespace oauth_relay::relay
