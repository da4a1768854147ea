// The delivery loop. Everything runs on the daemon's event loop: the spool
// and the token manager do their blocking work on their own threads and
// complete back here, so no state below needs a lock.
#include "relay/delivery/scheduler.hpp"

#include <algorithm>
#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/log.hpp"
#include "relay/delivery/bounce.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using asio::use_awaitable;

// How many due messages one look at the spool takes, and how many may wait
// in memory at most (a large backlog is taken in slices, not all at once).
constexpr std::size_t due_batch = 500;
constexpr std::size_t max_claimed = 2000;
// While this many claimed messages wait in memory for a connection, the spool
// is not asked for more: workers wake the dispatcher when the backlog runs
// low. Under load this spares a query per commit that would step over every
// claimed row again.
constexpr std::size_t refill_below = 250;
// Wakes that come faster than this are merged into one look at the spool, so
// a burst of incoming mail costs a few queries, not one per commit.
constexpr auto min_pass_interval = std::chrono::milliseconds(25);
// With mail in flight, look at the spool again this often even without a wake.
constexpr auto busy_poll = std::chrono::seconds(1);
// Without any queued mail, look at least this often (messages made due by
// `oauth-relayctl queue retry` are found within it).
constexpr auto idle_poll = std::chrono::seconds(30);
// An authenticated connection without work is kept this long for the next
// message, then closed with QUIT.
constexpr auto connection_idle = std::chrono::seconds(10);

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string one_line(const smtp::reply& r) {
  std::string out = std::to_string(r.code);
  if (!r.enhanced.empty()) out += " " + r.enhanced;
  for (const auto& line : r.lines) out += " " + line;
  return out;
}

// "550 5.1.1 text" → "5.1.1"; anything else → the class default.
std::string status_of(const std::string& reply_text, const char* fallback) {
  if (reply_text.size() > 9 && reply_text[3] == ' ' && std::isdigit(reply_text[4]) &&
      reply_text[5] == '.') {
    auto end = reply_text.find(' ', 4);
    return reply_text.substr(4, end - 4);
  }
  return fallback;
}

}  // namespace

struct delivery_scheduler::account_queue {
  explicit account_queue(asio::any_io_executor ex, std::string a)
      : account(std::move(a)), executor(std::move(ex)) {}
  std::string account;
  std::deque<queued_message> waiting;
  std::size_t workers = 0;
  std::size_t idle_workers = 0;
  asio::any_io_executor executor;
  // Each idle worker waits on its own timer (a shared one would wake them all
  // whenever one re-arms it); cancelled when work comes.
  std::set<asio::steady_timer*> idle_timers;
  void wake_idle() {
    for (auto* t : idle_timers) t->cancel();
  }
};

struct delivery_scheduler::connection_result {
  std::unique_ptr<upstream_client> client;
  std::string error;                   // why there is no connection
  std::chrono::milliseconds delay{0};  // when to try the account again
};

delivery_scheduler::delivery_scheduler(asio::any_io_executor executor, delivery_queue& spool,
                                       auth::token_manager& tokens,
                                       const config::settings& settings)
    : executor_(executor),
      spool_(spool),
      tokens_(tokens),
      settings_(settings),
      tls_(std::make_unique<asio::ssl::context>(
          make_upstream_tls_context(settings.upstream.ca_file))),
      wake_timer_(executor) {}

delivery_scheduler::~delivery_scheduler() = default;

void delivery_scheduler::start() {
  asio::co_spawn(executor_, dispatch_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error("delivery_loop_failed").kv("error", ex.what());
    }
  });
}

void delivery_scheduler::on_delivery_duration(std::function<void(double)> observer) {
  duration_observer_ = std::move(observer);
}

void delivery_scheduler::wake() {
  wake_pending_ = true;
  wake_timer_.cancel();
}

void delivery_scheduler::account_state_changed(const std::string& account,
                                               auth::token_state state) {
  if (state != auth::token_state::valid && state != auth::token_state::expired) return;
  // Mail that waited for this account (needs_reauth, refresh_failing) goes now.
  asio::co_spawn(
      executor_, spool_.reschedule(account, now_ms()),
      [this, account](std::exception_ptr, spool_result<std::size_t> changed) {
        if (!changed) {
          log::error("account_mail_release_failed")
              .kv("account", account)
              .kv("error", changed.error().detail);
        } else if (*changed > 0) {
          log::info("account_mail_released").kv("account", account).kv("messages", *changed);
        }
        wake();
      });
}

void delivery_scheduler::reconfigure(const config::settings& settings) {
  try {
    auto tls =
        std::make_unique<asio::ssl::context>(make_upstream_tls_context(settings.upstream.ca_file));
    // Connections already open keep the old context alive through their own streams
    // only while it exists: swap after the old connections are gone.
    settings_ = settings;
    if (open_.empty()) tls_ = std::move(tls);
  } catch (const std::exception& e) {
    log::error("upstream_tls_config_failed").kv("error", e.what());
  }
}

void delivery_scheduler::stop() {
  stopping_ = true;
  wake_timer_.cancel();
  for (auto& [account, q] : queues_) q->wake_idle();
  for (auto* client : open_) client->close();
}

std::size_t delivery_scheduler::waiting_total() const {
  std::size_t n = 0;
  for (const auto& [account, q] : queues_) n += q->waiting.size();
  return n;
}

std::chrono::milliseconds delivery_scheduler::backoff(int attempts) const {
  auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.queue.retry_initial);
  const auto max = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.queue.retry_max);
  for (int i = 0; i < attempts && delay < max; ++i) delay *= 2;
  return std::min(delay, max);
}

std::shared_ptr<delivery_scheduler::account_queue> delivery_scheduler::queue_for(
    const std::string& account) {
  auto& q = queues_[account];
  if (!q) q = std::make_shared<account_queue>(executor_, account);
  return q;
}

void delivery_scheduler::start_workers(const std::shared_ptr<account_queue>& q) {
  if (q->idle_workers > 0) q->wake_idle();
  const std::size_t wanted = std::min(settings_.upstream.max_connections,
                                      q->waiting.size() + q->workers - q->idle_workers);
  while (q->workers < wanted) {
    ++q->workers;
    asio::co_spawn(executor_, worker(q), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::error("delivery_worker_failed").kv("error", ex.what());
      }
    });
  }
}

asio::awaitable<void> delivery_scheduler::dispatch_loop() {
  auto last_pass = std::chrono::steady_clock::now() - min_pass_interval;
  while (!stopping_) {
    if (auto since = std::chrono::steady_clock::now() - last_pass; since < min_pass_interval) {
      wake_timer_.expires_after(min_pass_interval - since);
      co_await wake_timer_.async_wait(asio::as_tuple(use_awaitable));
      if (stopping_) break;
    }
    last_pass = std::chrono::steady_clock::now();
    wake_pending_ = false;
    const std::size_t room = max_claimed - std::min(max_claimed, claimed_.size());
    const bool backlog = waiting_total() >= refill_below;
    std::vector<queued_message> due;
    if (room > 0 && !backlog) {
      message_id_set busy(claimed_);
      auto found = co_await spool_.due(now_ms(), std::min(due_batch, room), std::move(busy));
      if (found) {
        due = std::move(*found);
      } else {
        // Nothing is claimed: the next pass asks again.
        log::error("queue_read_failed").kv("error", found.error().detail);
      }
    }
    if (stopping_) break;

    // An account nobody has authorized (or whose consent was revoked) cannot
    // send: its mail is parked in one statement until a token arrives.
    std::map<std::string, std::string> blocked;
    for (const auto& status : tokens_.status()) {
      if (status.state == auth::token_state::needs_reauth) {
        blocked[status.address] = auth::needs_reauth_message(status.address);
      } else if (status.state == auth::token_state::missing) {
        blocked[status.address] = "account " + status.address +
                                  " is not authorized yet: run \"oauth-relayctl authorize " +
                                  status.address + "\"";
      }
    }
    std::set<std::string> touched, parked;
    for (auto& m : due) {
      if (blocked.count(m.env.account) != 0) {
        parked.insert(m.env.account);
        continue;
      }
      if (!claimed_.insert(m.id).second) continue;
      auto q = queue_for(m.env.account);
      touched.insert(m.env.account);
      q->waiting.push_back(std::move(m));
    }
    for (const auto& account : touched) start_workers(queues_[account]);
    for (const auto& account : parked) {
      const auto until =
          now_ms() +
          std::chrono::duration_cast<std::chrono::milliseconds>(settings_.queue.retry_max).count();
      const std::string reason = blocked[account];
      const auto count = co_await spool_.postpone(account, until, reason);
      if (!count) {
        log::error("account_mail_postpone_failed")
            .kv("account", account)
            .kv("error", count.error().detail);
        continue;
      }
      log::warning("account_mail_waiting")
          .kv("account", account)
          .kv("messages", *count)
          .kv("reason", reason);
    }
    if (wake_pending_) continue;

    auto next_due = co_await spool_.next_due();
    if (stopping_ || wake_pending_) continue;
    std::optional<std::int64_t> next;
    if (next_due) {
      next = *next_due;
    } else {
      log::error("queue_read_failed").kv("error", next_due.error().detail);
    }
    auto delay = std::chrono::milliseconds(idle_poll);
    if (backlog) {
      delay = std::chrono::milliseconds(busy_poll);  // a worker wakes us sooner
    } else if (room > 0 && due.size() == std::min(due_batch, room) && parked.empty()) {
      delay = std::chrono::milliseconds(0);
    } else if (next) {
      const auto until = std::chrono::milliseconds(std::max<std::int64_t>(0, *next - now_ms()));
      // Due but claimed: in flight; its outcome will move it.
      delay = until.count() == 0 ? std::chrono::milliseconds(busy_poll)
                                 : std::min(until, std::chrono::milliseconds(idle_poll));
    }
    wake_timer_.expires_after(delay);
    co_await wake_timer_.async_wait(asio::as_tuple(use_awaitable));
  }
}

asio::awaitable<delivery_scheduler::connection_result> delivery_scheduler::open_connection(
    const std::string& account) {
  connection_result out;
  auto token = co_await tokens_.async_get_token(account, use_awaitable);
  if (!token.ok) {
    out.error = token.error;
    // Waiting on a person (authorize) or on the token endpoint: the token
    // manager tells account_state_changed when it is usable again.
    out.delay =
        token.state == auth::token_state::refresh_failing
            ? backoff(1)
            : std::chrono::duration_cast<std::chrono::milliseconds>(settings_.queue.retry_max);
    co_return out;
  }
  auto options = upstream_options::from(settings_.upstream, settings_.hostname);
  options.id = std::to_string(next_connection_++);
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto client = std::make_unique<upstream_client>(executor_, *tls_, options);
    open_.insert(client.get());
    auto connected = co_await client->connect();
    if (!connected.ok()) {
      open_.erase(client.get());
      out.error = "upstream " + settings_.upstream.host + ": " + connected.message;
      out.delay = backoff(0);
      co_return out;
    }
    auto auth = co_await client->authenticate(account, token.access_token);
    if (auth.ok()) {
      ++counters_.upstream_logins;
      out.client = std::move(client);
      co_return out;
    }
    open_.erase(client.get());
    client->close();
    if (auth.status != auth_status::token_rejected || attempt == 1) {
      out.error = "upstream refused XOAUTH2 for " + account + ": " + auth.message;
      out.delay = backoff(1);
      co_return out;
    }
    // RFC 7628 dance done: the token is stale or revoked. Refresh once and retry.
    tokens_.invalidate(account, token.access_token);
    token = co_await tokens_.async_get_token(account, use_awaitable);
    if (!token.ok) {
      out.error = token.error;
      out.delay = backoff(1);
      co_return out;
    }
  }
  co_return out;
}

asio::awaitable<void> delivery_scheduler::worker(std::shared_ptr<account_queue> q) {
  std::unique_ptr<upstream_client> connection;
  std::size_t sent = 0;
  auto close_connection = [&]() -> asio::awaitable<void> {
    if (!connection) co_return;
    auto* raw = connection.get();
    if (connection->usable()) co_await connection->quit();
    open_.erase(raw);
    connection.reset();
    --counters_.upstream_connections_active;
  };
  while (!stopping_) {
    if (q->waiting.empty()) {
      if (!connection) break;
      // Keep the connection for the next message; woken for work another
      // worker already took, wait on until the idle time is really over.
      const auto idle_until = std::chrono::steady_clock::now() + connection_idle;
      asio::steady_timer idle(q->executor);
      while (q->waiting.empty() && !stopping_ && std::chrono::steady_clock::now() < idle_until) {
        ++q->idle_workers;
        q->idle_timers.insert(&idle);
        idle.expires_at(idle_until);
        co_await idle.async_wait(asio::as_tuple(use_awaitable));
        q->idle_timers.erase(&idle);
        --q->idle_workers;
      }
      if (q->waiting.empty()) break;
      continue;
    }
    queued_message m = std::move(q->waiting.front());
    q->waiting.pop_front();
    if (!wake_pending_ && waiting_total() + 1 == refill_below) wake();

    auto content = co_await spool_.content(m.id);
    if (!content && content.error().code == spool_errc::not_found) {
      // Deleted meanwhile (oauth-relayctl queue delete).
      log::warning("delivery_skipped").kv("id", m.id).kv("reason", "it left the queue");
      doomed_.erase(m.id);
      claimed_.erase(m.id);
      continue;
    }
    if (!content) {
      // Queued but unreadable now (I/O error, a content file gone): tried
      // again later like any temporary failure, never dropped.
      log::error("message_content_unreadable").kv("id", m.id).kv("error", content.error().detail);
      const std::string reason = "cannot read the message: " + content.error().detail;
      co_await record(m, nullptr, reason, backoff(m.attempts), nullptr);
      continue;
    }
    if (doomed_.count(m.id) != 0) {
      // Deleted by the administrator before its attempt began: it is not sent.
      co_await delete_doomed(m.id);
      claimed_.erase(m.id);
      continue;
    }
    const auto age = std::chrono::seconds(now_ms() / 1000 - m.received_at);
    if (age >= settings_.queue.lifetime) {
      // Named, not a temporary inside the co_await: GCC 12 mishandles those.
      const std::string reason = "message expired after " + std::to_string(age.count() / 3600) +
                                 " hours in the queue: " + m.last_error;
      co_await record(m, nullptr, reason, std::chrono::milliseconds(0), &*content);
      continue;
    }
    if (connection &&
        (!connection->usable() || sent >= settings_.upstream.max_messages_per_connection)) {
      co_await close_connection();
    }
    if (!connection) {
      auto opened = co_await open_connection(q->account);
      if (!opened.client) {
        counters_.last_upstream_error = opened.error;
        ++counters_.failures_in_a_row[q->account];
        counters_.last_error_by_account[q->account] = opened.error;
        log::warning("delivery_deferred")
            .kv("account", q->account)
            .kv("messages", q->waiting.size() + 1)
            .kv("reason", opened.error);
        // Everything waiting for this account shares the fate of this attempt.
        std::deque<queued_message> all;
        all.swap(q->waiting);
        all.push_front(std::move(m));
        wake();  // the backlog in memory is gone: other accounts may need more
        for (auto& each : all) co_await record(each, nullptr, opened.error, opened.delay, nullptr);
        break;
      }
      connection = std::move(opened.client);
      ++counters_.upstream_connections_active;
      sent = 0;
    }

    // Only recipients still pending are attempted.
    envelope pending = m.env;
    pending.recipients.clear();
    for (const auto& r : m.recipients) {
      if (r.status == recipient_status::pending) pending.recipients.push_back(r.rcpt);
    }
    const auto started = std::chrono::steady_clock::now();
    auto result = co_await connection->send(pending, *content);
    ++sent;
    if (duration_observer_) {
      duration_observer_(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    // The next message need not wait for this one's sync: the outcome is
    // recorded on the side (group-committed with others) while the
    // connection goes on. Until it is stored the message stays claimed; a
    // crash before then sends it again, which Gmail's 250 already allows.
    std::optional<std::string> kept;
    if (!result.all_delivered()) kept = std::move(*content);  // a bounce may quote it
    asio::co_spawn(executor_, record_later(std::move(m), std::move(result), std::move(kept)),
                   asio::detached);
  }
  co_await close_connection();
  --q->workers;
  // Work that arrived while this worker was leaving is not stranded.
  if (!stopping_ && !q->waiting.empty()) start_workers(q);
}

asio::awaitable<void> delivery_scheduler::record_later(queued_message m, send_result result,
                                                       std::optional<std::string> content) {
  const std::string deferral = result.message;
  co_await record(m, &result, deferral, std::chrono::milliseconds(-1),
                  content ? &*content : nullptr);
}

asio::awaitable<void> delivery_scheduler::record(const queued_message& m, const send_result* result,
                                                 const std::string& deferral,
                                                 std::chrono::milliseconds delay,
                                                 const std::string* content) {
  delivery_record rec;
  rec.id = m.id;
  std::vector<int> status;
  std::vector<std::string> replies;
  for (const auto& r : m.recipients) {
    status.push_back(static_cast<int>(r.status));
    replies.push_back(r.last_reply);
  }
  std::vector<bool> from_upstream(m.recipients.size(), true);
  std::size_t delivered_now = 0;
  if (result) {
    std::size_t k = 0;
    for (std::size_t i = 0; i < m.recipients.size() && k < result->recipients.size(); ++i) {
      if (m.recipients[i].status != recipient_status::pending) continue;
      const auto& rr = result->recipients[k++];
      const int s = rr.status == delivery_status::delivered ? 1
                    : rr.status == delivery_status::failed  ? 2
                                                            : 0;
      status[i] = s;
      replies[i] = one_line(rr.reply);
      from_upstream[i] = rr.from_upstream;
      if (s == 1) ++delivered_now;
      rec.recipients.push_back({i, static_cast<recipient_status>(s), replies[i]});
    }
  }
  const bool any_pending = std::find(status.begin(), status.end(), 0) != status.end();
  const auto now = now_ms();
  const bool expired =
      any_pending && std::chrono::seconds(now / 1000 - m.received_at) >= settings_.queue.lifetime;
  if (expired) {
    for (std::size_t i = 0; i < status.size(); ++i) {
      if (status[i] != 0) continue;
      status[i] = 2;
      replies[i] = "4.4.7 " + deferral;
      from_upstream[i] = false;
      rec.recipients.push_back({i, recipient_status::failed, replies[i]});
    }
  }
  rec.finished = std::find(status.begin(), status.end(), 0) == status.end();
  if (!rec.finished) {
    const auto wait = delay.count() >= 0 && !result ? delay : backoff(m.attempts);
    rec.next_attempt_ms = now + wait.count();
    rec.last_error = deferral.empty() && result ? "some recipients deferred" : deferral;
    for (std::size_t i = 0; i < status.size(); ++i) {
      if (status[i] == 0 && result && !replies[i].empty()) rec.last_error = replies[i];
    }
  }

  std::optional<generated_message> bounce;
  if (rec.finished) {
    bounce_input in;
    in.reporting_host = settings_.hostname;
    in.upstream_host = settings_.upstream.host;
    in.original_id = m.id;
    in.arrival_time = m.received_at;
    in.now = now / 1000;
    in.original = m.env;
    in.original_content = content;
    for (std::size_t i = 0; i < status.size(); ++i) {
      if (status[i] != 2) continue;
      failed_recipient f;
      f.rcpt = m.recipients[i].rcpt;
      f.diagnostic = replies[i];
      f.status = expired && !from_upstream[i] ? "4.4.7" : status_of(replies[i], "5.0.0");
      f.from_upstream = from_upstream[i];
      in.failed.push_back(std::move(f));
    }
    if (!in.failed.empty()) bounce = make_bounce(in);
  }

  const bool bounced = bounce.has_value();
  auto stored = co_await spool_.record(std::move(rec), std::move(bounce));
  if (doomed_.count(m.id) != 0) co_await delete_doomed(m.id);
  claimed_.erase(m.id);
  if (!stored) {
    log::error("delivery_record_failed").kv("id", m.id).kv("error", stored.error().detail);
    co_return;
  }
  const bool finished = std::find(status.begin(), status.end(), 0) == status.end();
  const auto failed = static_cast<std::size_t>(std::count(status.begin(), status.end(), 2));
  if (delivered_now > 0) {
    tokens_.record_delivery(m.env.account, now / 1000);
    counters_.last_upstream_error.clear();
    counters_.failures_in_a_row[m.env.account] = 0;
    counters_.last_error_by_account.erase(m.env.account);
  } else if (result && !finished) {
    ++counters_.failures_in_a_row[m.env.account];
    counters_.last_error_by_account[m.env.account] = deferral;
  }
  if (result) {
    if (delivered_now > 0) ++counters_.attempts_delivered;
    if (!finished) ++counters_.attempts_deferred;
    if (finished && failed > 0) ++counters_.attempts_failed;
  } else if (!finished) {
    ++counters_.attempts_deferred;
  }
  if (finished && failed == 0) ++counters_.delivered_by_account[m.env.account];
  if (bounced) {
    ++counters_.bounced;
    wake();  // the bounce is new mail
  }
  auto line = finished ? (failed == 0 ? log::info("delivered") : log::notice("delivery_failed"))
                       : log::info("delivery_deferred");
  line.kv("id", m.id)
      .kv("account", m.env.account)
      .kv("recipients", m.recipients.size())
      .kv("delivered", delivered_now)
      .kv("failed", failed);
  if (!finished) line.kv("attempt", m.attempts + 1).kv("reason", deferral);
  if (bounced) line.kv("bounce", "sent to sender");
}

void delivery_scheduler::delete_messages(std::vector<std::string> ids,
                                         std::function<void(spool_result<queue_change>)> done) {
  std::vector<std::string> now;
  std::size_t later = 0;
  for (auto& id : ids) {
    if (claimed_.count(id) == 0) {
      now.push_back(std::move(id));
      continue;
    }
    bool was_waiting = false;
    for (auto& [account, q] : queues_) {
      auto it = std::find_if(q->waiting.begin(), q->waiting.end(),
                             [&](const queued_message& m) { return m.id == id; });
      if (it == q->waiting.end()) continue;
      q->waiting.erase(it);
      was_waiting = true;
      break;
    }
    if (was_waiting) {
      // The spool's delete runs before any later look for due mail, so the
      // id may leave claimed_ now.
      claimed_.erase(id);
      now.push_back(std::move(id));
    } else if (doomed_.insert(id).second) {
      ++later;
    }
  }
  // co_spawn starts at once on this thread, so the delete is queued before
  // any later look for due mail.
  asio::co_spawn(
      executor_, spool_.remove(std::move(now)),
      [later, done = std::move(done)](std::exception_ptr error, spool_result<queue_change> result) {
        if (error) result = spool_failure{spool_errc::failed, "the delete failed"};
        if (result) result->changed += later;
        done(std::move(result));
      });
}

asio::awaitable<void> delivery_scheduler::delete_doomed(const std::string& id) {
  doomed_.erase(id);
  std::vector<std::string> ids{id};
  auto result = co_await spool_.remove(std::move(ids));
  if (!result) {
    log::error("message_delete_failed").kv("id", id).kv("error", result.error().detail);
  } else if (result->changed == 0) {
    log::notice("message_delete_skipped").kv("id", id).kv("reason", "it left the queue meanwhile");
  } else {
    log::notice("message_deleted").kv("id", id).kv("after", "its delivery attempt");
  }
}

}  // namespace oauth_relay::relay
