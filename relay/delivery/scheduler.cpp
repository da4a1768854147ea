// The delivery loop: the I/O around decision.hpp. Everything runs on the
// daemon's event loop (the spool and the tokens complete back here), so no
// state below needs a lock.
#include "relay/delivery/scheduler.hpp"

#include <algorithm>
#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/log.hpp"
#include "config/provider.hpp"
#include "relay/delivery/bounce.hpp"  // bounce_quote_limit
#include "relay/delivery/scheduler_parts.hpp"

namespace oauth_relay::relay {
namespace {

using asio::use_awaitable;

// How many due messages one look at the spool takes, and how many may wait
// in memory at most (a large backlog is taken in slices, not all at once).
constexpr std::size_t due_batch = 500;
// And how many of the arrivals since the last look each look takes besides,
// however long the backlog before them (waiting_mail.hpp gives them their
// turn). Looks come at most every min_pass_interval: room for 4,000 new
// messages a second.
constexpr std::size_t fresh_share = 100;
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

delivery_policy policy_of(const config::settings& s) {
  delivery_policy p;
  p.retry_initial = std::chrono::duration_cast<std::chrono::milliseconds>(s.queue.retry_initial);
  p.retry_max = std::chrono::duration_cast<std::chrono::milliseconds>(s.queue.retry_max);
  p.lifetime = s.queue.lifetime;
  p.delay_warning = s.queue.delay_warning;
  p.reporting_host = s.hostname;
  p.upstream_host = s.upstream.host;
  return p;
}

}  // namespace

delivery_scheduler::delivery_scheduler(asio::any_io_executor executor, delivery_queue& queue,
                                       auth::token_source& tokens, upstream_connector& upstream,
                                       const config::settings& settings, clock now)
    : executor_(executor),
      queue_(queue),
      tokens_(tokens),
      upstream_(&upstream),
      settings_(settings),
      policy_(policy_of(settings)),
      now_(std::move(now)),
      parking_(queue, tokens),
      wake_timer_(executor) {}

delivery_scheduler::~delivery_scheduler() = default;

void delivery_scheduler::start() {
  asio::co_spawn(executor_, dispatch_loop(), log_failure("delivery_loop_failed"));
}

void delivery_scheduler::on_delivery_duration(std::function<void(double)> observer) {
  duration_observer_ = std::move(observer);
}

void delivery_scheduler::wake() {
  wake_pending_ = true;
  wake_timer_.cancel();
}

void delivery_scheduler::reconfigure(const config::settings& settings,
                                     upstream_connector& upstream) {
  settings_ = settings;
  policy_ = policy_of(settings);
  upstream_ = &upstream;
}

void delivery_scheduler::stop() {
  stopping_ = true;
  wake_timer_.cancel();
  for (auto& [account, q] : queues_) q->wake_idle();
  for (auto* connection : open_) connection->close();
}

std::size_t delivery_scheduler::waiting_total() const {
  std::size_t n = 0;
  for (const auto& [account, q] : queues_) n += q->waiting.size();
  return n;
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
    asio::co_spawn(executor_, worker(q), log_failure("delivery_worker_failed"));
  }
}

asio::awaitable<void> delivery_scheduler::dispatch_loop() {
  co_await load_sending_history();
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
    // While enough claimed mail waits in memory, only the fresh share is
    // looked for: new mail never waits for a backlog to be worked through.
    const bool backlog = waiting_total() >= refill_below;
    due_mail due;
    std::size_t oldest_asked = 0;
    if (room > 0) {
      due_request request;
      request.now_ms = now_();
      request.fresh = std::min(fresh_share, room);
      request.oldest = backlog ? 0 : std::min(due_batch, room - request.fresh);
      request.arrived_after = arrived_through_;
      // The oldest-first look steps over every claimed message, so it is
      // told them all. The fresh share alone is not: its place has passed
      // all it handed out, and anything claimed since is skipped below. A
      // copy of 2,000 ids for each look, 40 times a second, cost more than
      // the rows it spares.
      if (request.oldest > 0) request.busy = claimed_;
      request.busy.insert(removing_.begin(), removing_.end());
      oldest_asked = request.oldest;
      auto found = co_await queue_.due(std::move(request));
      if (found) {
        due = std::move(*found);
        arrived_through_ = due.arrived_through;
      } else {
        log::error("delivery_queue_failed").kv("query", "due").kv("error", found.error().detail);
      }
    }
    if (stopping_) break;

    // An account nobody has authorized (or whose consent was revoked) cannot
    // send: its mail is parked in one statement until a token arrives. So
    // is an account on hold (Gmail's quota or rate, or its limits:) until
    // the hold ends.
    auto blocked = parking_.blocked();
    std::set<std::string> touched, parked;
    std::map<std::string, std::int64_t> parked_until;
    const auto pass_time = now_();
    co_await resume_ended_holds(pass_time);
    for (auto& [m, fresh] : claims_of(due)) {
      if (removing_.count(m.id) != 0 || claimed_.count(m.id) != 0) continue;
      const auto b = blocked.find(m.env.account);
      std::optional<account_hold> hold;
      if (b == blocked.end()) hold = limits_.held(m.env.account, pass_time);
      if (b != blocked.end() || hold) {
        const std::string why = hold ? hold->reason : b->second;
        const auto verdict = account_parking::sort(m, policy_, pass_time);
        if (verdict == account_parking::verdict::park) {
          parked.insert(m.env.account);
          if (hold) {
            blocked[m.env.account] = why;
            parked_until[m.env.account] = hold->resumes_at_ms;
          }
          continue;
        }
        if (verdict == account_parking::verdict::warn) {
          // The attempt stores the warning; the message stays parked.
          claimed_.insert(m.id);
          const auto wait = hold ? std::chrono::milliseconds(
                                       std::max<std::int64_t>(0, hold->resumes_at_ms - pass_time))
                                 : policy_.retry_max;
          const attempt waiting = not_sent{why, wait, std::nullopt};
          asio::co_spawn(executor_, record_owned(std::move(m), waiting),
                         log_failure("delay_warning_failed"));
          continue;
        }
        // Expired: a worker bounces it without opening a connection, and
        // the bounce says why it waited.
        m.last_error = why;
      }
      claimed_.insert(m.id);
      auto q = queue_for(m.env.account);
      touched.insert(m.env.account);
      q->waiting.push(std::move(m), fresh);
    }
    for (const auto& account : touched) start_workers(queues_[account]);
    if (!parked.empty()) co_await parking_.park(parked, blocked, policy_, now_(), parked_until);
    if (wake_pending_) continue;

    auto next = co_await queue_.next_due();
    if (!next) {
      log::error("delivery_queue_failed").kv("query", "next_due").kv("error", next.error().detail);
    }
    if (stopping_ || wake_pending_) continue;
    auto delay = std::chrono::milliseconds(idle_poll);
    if (backlog) {
      delay = std::chrono::milliseconds(busy_poll);  // a worker wakes us sooner
    } else if (oldest_asked > 0 && due.oldest.size() == oldest_asked && parked.empty()) {
      delay = std::chrono::milliseconds(0);
    } else if (next && *next) {
      const auto until = std::chrono::milliseconds(std::max<std::int64_t>(0, **next - now_()));
      // Due but claimed: in flight; its outcome will move it.
      delay = until.count() == 0 ? std::chrono::milliseconds(busy_poll)
                                 : std::min(until, std::chrono::milliseconds(idle_poll));
    }
    wake_timer_.expires_after(delay);
    co_await wake_timer_.async_wait(asio::as_tuple(use_awaitable));
  }
}

asio::awaitable<
    std::variant<delivery_scheduler::connection_ptr, delivery_scheduler::connect_failure>>
delivery_scheduler::open_connection(const std::string& account) {
  auto token = co_await tokens_.get_token(account);
  if (!token.ok) {
    // Waiting on a person (authorize) or on the token endpoint: the token
    // source tells account_state_changed when it is usable again.
    not_sent failure{
        token.error,
        token.state == auth::token_state::refresh_failing ? policy_.backoff(2) : policy_.retry_max,
        std::nullopt};
    co_return connect_failure{std::move(failure), false};
  }
  const std::string id = std::to_string(next_connection_++);
  for (int round = 0; round < 2; ++round) {
    // The connector is looked up each time: a reload may have replaced it.
    connection_ptr connection = upstream_->make_connection_for(id, account);
    open_.insert(connection.get());
    auto connected = co_await connection->connect();
    if (!connected.ok()) {
      open_.erase(connection.get());
      not_sent failure{"upstream " + config::provider_of(settings_, account).upstream.host + ": " +
                           connected.message,
                       policy_.backoff(1), connected.reply};
      co_return connect_failure{std::move(failure), true};
    }
    note_reachable(account);
    auto auth = co_await connection->authenticate(account, token.access_token);
    if (auth.ok()) {
      ++counters_.upstream_logins;
      co_return std::move(connection);
    }
    open_.erase(connection.get());
    connection->close();
    if (auth.status != auth_status::token_rejected || round == 1) {
      not_sent failure{"upstream refused XOAUTH2 for " + account + ": " + auth.message,
                       policy_.backoff(2), auth.reply};
      co_return connect_failure{std::move(failure), false};
    }
    // RFC 7628 dance done: the token is stale or revoked. Refresh once and retry.
    tokens_.invalidate(account, token.access_token);
    token = co_await tokens_.get_token(account);
    if (!token.ok) {
      not_sent failure{token.error, policy_.backoff(2), std::nullopt};
      co_return connect_failure{std::move(failure), false};
    }
  }
  not_sent unreachable{"no upstream connection", policy_.backoff(1), std::nullopt};
  co_return connect_failure{std::move(unreachable), true};
}

asio::awaitable<void> delivery_scheduler::worker(std::shared_ptr<account_queue> q) {
  connection_ptr connection;
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
    queued_message m = q->waiting.pop();
    if (!wake_pending_ && waiting_total() + 1 == refill_below) wake();

    auto content = co_await queue_.content(m.id);
    if (!content && content.error().code == spool_errc::not_found) {
      // Deleted meanwhile (oauth-relayctl queue delete): its row is gone.
      log::warning("delivery_skipped").kv("id", m.id).kv("reason", "message not queued");
      doomed_.erase(m.id);
      claimed_.erase(m.id);
      continue;
    }
    if (doomed_.count(m.id) != 0) {
      // Deleted by the administrator before its attempt began: it is not sent.
      co_await delete_doomed(m.id);
      claimed_.erase(m.id);
      continue;
    }
    if (!content) {
      co_await content_failed(m, content.error());
      continue;
    }
    if (past_lifetime(m, policy_, now_())) {
      const attempt expired = too_old{};
      co_await record(m, expired, &*content);
      continue;
    }
    // Only recipients still pending are attempted.
    envelope pending = m.env;
    pending.recipients.clear();
    for (const auto& r : m.recipients) {
      if (r.status == recipient_status::pending) pending.recipients.push_back(r.rcpt);
    }
    // Held meanwhile (another connection heard Gmail's answer), or this
    // message would go over the account's limits: it is not sent.
    auto hold = limits_.held(q->account, now_());
    if (!hold) {
      hold = limits_.check(q->account, limits_of(q->account), pending.recipients.size(), now_());
    }
    if (hold) {
      co_await hold_account(q, *hold, std::move(m));
      break;
    }
    // Counted against the limits from here, so another connection of the
    // account cannot take the same room while this one connects.
    limits_.begin_send(q->account, pending.recipients.size());
    if (connection &&
        (!connection->usable() || sent >= settings_.upstream.max_messages_per_connection)) {
      co_await close_connection();
    }
    if (!connection) {
      auto opened = co_await open_connection(q->account);
      if (const auto* failed = std::get_if<connect_failure>(&opened)) {
        limits_.end_send(q->account, pending.recipients.size());
        const not_sent* failure = &failed->what;
        const attempt what = *failure;
        if (const auto answer = provider_answer_in(what)) {
          // Gmail asked for a pause (421 4.7.0 at the greeting, 454 4.7.0
          // at AUTH): the account is held, which is not a failure.
          const auto hold = limits_.hold_for(q->account, *answer->answer, answer->reply, now_(),
                                             hold_policy_of(policy_));
          note_reachable(q->account);  // it answered
          // This message was attempted; the rest waits without an attempt.
          co_await record(m, what, nullptr, hold.resumes_at_ms);
          co_await hold_account(q, hold, std::nullopt);
          break;
        }
        counters_.last_upstream_error = failure->reason;
        // Everything waiting for this account shares the fate of this attempt.
        auto all = q->waiting.take_all();
        all.push_front(std::move(m));
        if (failed->unreachable) {
          // An outage is one event (and its own health rule), not a failure
          // per connection or a line per message.
          note_unreachable(q->account, failure->reason, all);
        } else {
          ++counters_.failures_in_a_row[q->account];
          counters_.last_error_by_account[q->account] = failure->reason;
          log::warning("delivery_deferred")
              .kv("account", q->account)
              .kv("messages", all.size())
              .kv("reason", failure->reason);
        }
        wake();  // the backlog in memory is gone: other accounts may need more
        for (auto& each : all) {
          co_await record(each, what, nullptr, std::nullopt, failed->unreachable);
        }
        break;
      }
      connection = std::move(std::get<connection_ptr>(opened));
      ++counters_.upstream_connections_active;
      sent = 0;
    }

    const auto started = std::chrono::steady_clock::now();
    auto result = co_await connection->send(pending, *content);
    limits_.end_send(q->account, pending.recipients.size());
    ++sent;
    if (duration_observer_) {
      duration_observer_(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
    }
    if (result.content_failure) {
      // Cut off before its end of data: nothing was delivered, and the
      // connection is gone. The same as a content that could not be opened.
      co_await content_failed(m, *result.content_failure);
      continue;
    }
    // The next message need not wait for this one's sync: the outcome is
    // recorded on the side (group-committed with others) while the
    // connection goes on. Until it is stored the message stays claimed; a
    // crash before then sends it again, which Gmail's 250 already allows.
    if (const auto delivered = result.count(delivery_status::delivered); delivered > 0) {
      limits_.record_sent(q->account, now_(), delivered);
      limits_.delivered(q->account);
    }
    std::optional<message_content> kept;
    if (!result.all_delivered()) kept = std::move(*content);  // a bounce may quote it
    std::optional<account_hold> answered;
    if (const auto answer = provider_answer_in(sent_upstream{result})) {
      answered = limits_.hold_for(q->account, *answer->answer, answer->reply, now_(),
                                  hold_policy_of(policy_));
    }
    const auto held_until =
        answered ? std::optional<std::int64_t>(answered->resumes_at_ms) : std::nullopt;
    asio::co_spawn(executor_,
                   record_later(std::move(m), std::move(result), std::move(kept), held_until),
                   log_failure("delivery_record_failed"));
    if (answered) {
      // The rest of the account's mail waits for the hold; this connection
      // is done (Gmail may close it anyway).
      co_await hold_account(q, *answered, std::nullopt);
      break;
    }
  }
  co_await close_connection();
  --q->workers;
  // Work that arrived while this worker was leaving is not stranded.
  if (!stopping_ && !q->waiting.empty()) start_workers(q);
}

asio::awaitable<void> delivery_scheduler::content_failed(const queued_message& m,
                                                         const spool_failure& failure) {
  if (failure.code == spool_errc::lost) {
    // Its file is gone or damaged: no retry can send it. The sender hears
    // now (without a copy) and /health shows it, instead of the message
    // coming up again on every pass.
    log::error("delivery_content_lost").kv("id", m.id).kv("error", failure.detail);
    ++counters_.messages_lost;
    counters_.last_lost_at = now_() / 1000;
    counters_.last_lost = m.id + ": " + failure.detail;
    const attempt lost =
        content_lost{"the message content is gone from the queue: " + failure.detail};
    co_await record(m, lost, nullptr);
    co_return;
  }
  // A read that failed may work later (EIO, EMFILE, ENOMEM): the message
  // waits its backoff like any temporary failure, and queue.lifetime ends
  // the wait, instead of staying claimed or being passed over forever.
  ++counters_.content_unreadable;
  log::warning("delivery_content_unreadable").kv("id", m.id).kv("error", failure.detail);
  const attempt unreadable =
      not_sent{"cannot read the message content: " + failure.detail, std::nullopt, std::nullopt};
  co_await record(m, unreadable, nullptr);
}

asio::awaitable<void> delivery_scheduler::record_later(queued_message m, send_result result,
                                                       std::optional<message_content> content,
                                                       std::optional<std::int64_t> held_until) {
  attempt what = sent_upstream{std::move(result)};
  co_await record(m, std::move(what), content ? &*content : nullptr, held_until);
}

asio::awaitable<void> delivery_scheduler::record_owned(queued_message m, attempt what) {
  co_await record(m, std::move(what), nullptr);
}

asio::awaitable<std::optional<std::string>> delivery_scheduler::quote_of(const queued_message& m,
                                                                         message_content* content) {
  std::optional<message_content> read_again;
  if (!content) {
    auto opened = co_await queue_.content(m.id);
    if (!opened) {
      log::warning("bounce_without_copy").kv("id", m.id).kv("error", opened.error().detail);
      co_return std::nullopt;
    }
    content = &read_again.emplace(std::move(*opened));
  }
  auto quoted = content->read_prefix(bounce_quote_limit);
  if (!quoted) {
    log::warning("bounce_without_copy").kv("id", m.id).kv("error", quoted.error().detail);
    co_return std::nullopt;
  }
  co_return std::move(*quoted);
}

asio::awaitable<void> delivery_scheduler::record(const queued_message& m, attempt what,
                                                 message_content* content,
                                                 std::optional<std::int64_t> held_until,
                                                 bool quiet) {
  const auto now = now_();
  if (const auto why = provider_advice_in(what, m.env.account)) {
    // A refusal with a fix the administrator applies in the provider's console.
    log::warning("upstream_refused")
        .kv("id", m.id)
        .kv("account", m.env.account)
        .kv("reason", why->cause)
        .kv("hint", why->fix);
  }
  // A bounce's Remote-MTA is the account's own provider's server.
  delivery_policy policy = policy_;
  policy.upstream_host = config::provider_of(settings_, m.env.account).upstream.host;
  auto decision = decide(m, what, policy, now, std::nullopt, held_until);
  if (decision.bounce && !std::holds_alternative<content_lost>(what)) {
    // A notice quotes the original (at most bounce_quote_limit of it), read
    // only now that one is due: no message holds its content while it waits
    // to be recorded. The same decision again, with the copy.
    auto quoted = co_await quote_of(m, content);
    if (quoted) decision = decide(m, what, policy, now, std::string_view(*quoted), held_until);
  }
  // A bounce of a finished message, or the delay warning of a queued one.
  const bool notice = decision.bounce.has_value();
  const bool bounced = notice && decision.record.finished;
  if (notice) {
    decision.bounce->env.account = parking_.notice_account(m.env.account, settings_.accounts);
  }
  auto stored = co_await queue_.record(std::move(decision.record), std::move(decision.bounce));
  if (doomed_.count(m.id) != 0) co_await delete_doomed(m.id);
  claimed_.erase(m.id);
  if (!stored) {
    log::error("delivery_record_failed").kv("id", m.id).kv("error", stored.error().detail);
    co_return;
  }
  count(m, decision.report, bounced, now, quiet && !notice);
  if (notice && !bounced) {
    ++counters_.delay_warnings;
    log::info("delay_warning_sent").kv("id", m.id).kv("to", m.env.sender);
    wake();  // the warning is new mail
  }
}

void delivery_scheduler::count(const queued_message& m, const attempt_report& r, bool bounced,
                               std::int64_t now, bool quiet) {
  const auto& account = m.env.account;
  if (r.delivered_now > 0) {
    tokens_.record_delivery(account, now / 1000);
    counters_.last_upstream_error.clear();
    counters_.failures_in_a_row[account] = 0;
    counters_.last_error_by_account.erase(account);
  } else if (r.account_failure) {
    ++counters_.failures_in_a_row[account];
    counters_.last_error_by_account[account] = r.reason;
  }
  counters_.attempts_delivered += r.counts_delivered ? 1 : 0;
  counters_.attempts_deferred += r.counts_deferred ? 1 : 0;
  counters_.attempts_failed += r.counts_failed ? 1 : 0;
  if (r.outcome == message_outcome::delivered) ++counters_.delivered_by_account[account];
  if (bounced) {
    ++counters_.bounced;
    wake();  // the bounce is new mail
  }
  if (quiet) return;
  auto line = r.outcome == message_outcome::delivered ? log::info("delivered")
              : r.outcome == message_outcome::failed  ? log::notice("delivery_failed")
                                                      : log::info("delivery_deferred");
  line.kv("id", m.id)
      .kv("account", account)
      .kv("recipients", m.recipients.size())
      .kv("delivered", r.delivered_now)
      .kv("failed", r.failed);
  if (r.outcome == message_outcome::deferred) {
    line.kv("attempt", r.attempt_number).kv("reason", r.reason);
  }
  if (bounced) line.kv("bounce", "sent to sender");
}

}  // namespace oauth_relay::relay
