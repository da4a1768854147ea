// The scheduler's side of each account's sending state: the sending record
// read back at start, holds put on and lifted (parking the account's mail
// until they end), an account's parked mail released when it can send
// again, and an unreachable upstream logged as one event. A part of the
// delivery scheduler (scheduler.cpp).
#include <algorithm>

#include <boost/asio/co_spawn.hpp>

#include "config/log.hpp"
#include "relay/delivery/scheduler_parts.hpp"

namespace oauth_relay::relay {
namespace {

// While an upstream cannot be reached, one summary line this often (the
// start and the end of the outage are logged as they happen).
constexpr auto outage_summary_every = std::chrono::seconds(60);

hold_row row_of(const std::string& account, const account_hold& h) {
  return hold_row{
      account, std::string(to_string(h.state)), h.since_ms, h.resumes_at_ms, h.throttles, h.reason};
}

}  // namespace

void delivery_scheduler::account_state_changed(const std::string& account,
                                               auth::token_state state) {
  if (state != auth::token_state::valid && state != auth::token_state::expired) return;
  // Mail that waited for this account (needs_reauth, refresh_failing) goes now.
  asio::co_spawn(executor_, release_account(account), log_failure("account_release_failed"));
}

asio::awaitable<void> delivery_scheduler::release_account(std::string account) {
  // One release of an account at a time: authorize and import report the
  // change twice (the token's state and the accounts' reload), and two
  // releases of a long queue would go slice by slice through the same rows.
  // A change during a release makes it run once more, for mail parked since.
  const auto key = lowercase(account);
  if (!releasing_.insert(key).second) {
    release_again_.insert(key);
    co_return;
  }
  do {
    release_again_.erase(key);
    auto changed = co_await queue_.reschedule(account, now_());
    if (!changed) {
      log::error("account_mail_release_failed")
          .kv("account", account)
          .kv("error", changed.error().detail);
    } else if (*changed > 0) {
      log::info("account_mail_released").kv("account", account).kv("messages", *changed);
    }
    wake();
  } while (release_again_.count(key) != 0 && !stopping_);
  releasing_.erase(key);
}

void delivery_scheduler::lift_holds() {
  limits_.lift_all();
}

asio::awaitable<void> delivery_scheduler::load_sending_history() {
  const auto now = now_();
  auto history = co_await queue_.sending_history(now - sending_window.count());
  if (!history) {
    // Not fatal: the counts start from zero, and Gmail still answers.
    log::error("sending_record_unreadable").kv("error", history.error().detail);
    co_return;
  }
  for (const auto& r : history->sent) limits_.record_sent(r.account, r.sent_at_ms, r.recipients);
  for (const auto& row : history->holds) {
    account_hold h;
    h.state = row.state == "over_quota" ? sending_state::over_quota : sending_state::throttled;
    h.since_ms = row.since_ms;
    h.resumes_at_ms = row.resumes_at_ms;
    h.throttles = row.throttles;
    h.reason = row.reason;
    limits_.restore(row.account, h, hold_policy_of(policy_));
    const auto restored = limits_.held(row.account, now);
    const std::int64_t resumes = restored ? restored->resumes_at_ms : now;
    if (restored) {
      announced_[lowercase(row.account)] = *restored;
    } else {
      // Over by now (the window moved on while the daemon was stopped).
      auto cleared = co_await queue_.save_hold(row.account, std::nullopt);
      if (!cleared) log::error("account_hold_save_failed").kv("error", cleared.error().detail);
    }
    if (restored) {
      log::warning("account_sending_held")
          .kv("account", row.account)
          .kv("state", row.state)
          .kv("resumes_at", resumes / 1000)
          .kv("reason", row.reason);
    }
    // Its mail was parked until the hold's end as it was then; the record
    // may say it ends sooner now.
    auto changed = co_await queue_.reschedule(row.account, resumes);
    if (!changed) {
      log::error("account_mail_release_failed")
          .kv("account", row.account)
          .kv("error", changed.error().detail);
    }
  }
}

void delivery_scheduler::note_unreachable(const std::string& account, const std::string& reason,
                                          const std::deque<queued_message>& messages) {
  const auto now = now_();
  auto [it, first] = outages_.try_emplace(account);
  auto& o = it->second;
  ++o.failed_connections;
  for (const auto& m : messages) o.deferred.insert(m.id);
  if (first) {
    o.since_ms = now;
    o.last_summary_ms = now;
    o.reason = reason;
    log::warning("upstream_unreachable")
        .kv("account", account)
        .kv("since", now / 1000)
        .kv("messages", o.deferred.size())
        .kv("reason", reason);
    return;
  }
  o.reason = reason;
  if (now - o.last_summary_ms < std::chrono::milliseconds(outage_summary_every).count()) return;
  o.last_summary_ms = now;
  log::warning("upstream_still_unreachable")
      .kv("account", account)
      .kv("since", o.since_ms / 1000)
      .kv("seconds", (now - o.since_ms) / 1000)
      .kv("failed_connections", o.failed_connections)
      .kv("messages", o.deferred.size())
      .kv("reason", reason);
}

void delivery_scheduler::note_reachable(const std::string& account) {
  const auto it = outages_.find(account);
  if (it == outages_.end()) return;
  const auto& o = it->second;
  log::notice("upstream_reachable")
      .kv("account", account)
      .kv("after_seconds", (now_() - o.since_ms) / 1000)
      .kv("failed_connections", o.failed_connections)
      .kv("messages_waiting", o.deferred.size());
  outages_.erase(it);
}

const config::account_limits& delivery_scheduler::limits_of(const std::string& account) const {
  static const config::account_limits none;
  for (const auto& a : settings_.accounts) {
    if (lowercase(a.address) == lowercase(account)) return a.limits;
  }
  return none;
}

sending_status delivery_scheduler::sending(const std::string& account) {
  const auto now = now_();
  auto status = limits_.status(account, now);
  if (status.state != sending_state::ok) return status;
  // Its limits may be used up with no message tried yet (the one that would
  // go over was parked before a restart): over_quota all the same.
  if (const auto full = limits_.check(account, limits_of(account), 1, now)) {
    status.state = full->state;
    status.resumes_at_ms = full->resumes_at_ms;
    status.reason = full->reason;
  }
  return status;
}

asio::awaitable<void> delivery_scheduler::hold_account(std::shared_ptr<account_queue> q,
                                                       const account_hold& hold,
                                                       std::optional<queued_message> also) {
  const std::string key = lowercase(q->account);
  auto known = announced_.find(key);
  const bool news = known == announced_.end() || known->second.state != hold.state ||
                    known->second.resumes_at_ms != hold.resumes_at_ms;
  if (news) {
    announced_[key] = hold;
    // One line per hold, not per message: what, until when, and why.
    log::warning("account_sending_held")
        .kv("account", q->account)
        .kv("state", to_string(hold.state))
        .kv("resumes_at", hold.resumes_at_ms / 1000)
        .kv("reason", hold.reason);
    if (!hold.own_limit) {
      auto saved = co_await queue_.save_hold(q->account, row_of(q->account, hold));
      if (!saved) log::error("account_hold_save_failed").kv("error", saved.error().detail);
    }
  }
  auto all = q->waiting.take_all();
  if (also) all.push_front(std::move(*also));
  if (all.empty()) co_return;
  wake();  // the backlog in memory is gone: other accounts may need more
  // Their rows are due (they were claimed as due): one statement puts them
  // off to the hold's end, no attempt counted. Only then are they let go,
  // so no pass can take them again in between.
  const std::set<std::string> accounts{q->account};
  const std::map<std::string, std::string> reasons{{q->account, hold.reason}};
  const std::map<std::string, std::int64_t> until{{q->account, hold.resumes_at_ms}};
  co_await parking_.park(accounts, reasons, policy_, now_(), until);
  for (const auto& m : all) {
    if (doomed_.count(m.id) != 0) co_await delete_doomed(m.id);
    claimed_.erase(m.id);
  }
}

asio::awaitable<void> delivery_scheduler::resume_ended_holds(std::int64_t now_ms) {
  for (auto it = announced_.begin(); it != announced_.end();) {
    if (limits_.held(it->first, now_ms)) {
      ++it;
      continue;
    }
    const auto ended = it->second;
    const std::string account = it->first;
    announced_.erase(it);
    log::info("account_sending_resumed")
        .kv("account", account)
        .kv("state_was", to_string(ended.state))
        .kv("held_seconds", (now_ms - ended.since_ms) / 1000);
    if (!ended.own_limit) {
      auto cleared = co_await queue_.save_hold(account, std::nullopt);
      if (!cleared) log::error("account_hold_save_failed").kv("error", cleared.error().detail);
    }
    it = announced_.upper_bound(account);  // the map may have changed meanwhile
  }
}

}  // namespace oauth_relay::relay
