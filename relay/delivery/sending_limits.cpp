// The window is a list of delivered messages per account, oldest first,
// pruned as it is read: at Gmail's 2,000 a day that is a few tens of
// kilobytes per account, and every answer is exact (no buckets to round).
#include "relay/delivery/sending_limits.hpp"

#include <algorithm>
#include <cctype>

#include "common/backoff.hpp"

namespace oauth_relay::relay {
namespace {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::size_t recipients_in(const std::deque<sent_entry>& window) {
  std::size_t n = 0;
  for (const auto& e : window) n += e.recipients;
  return n;
}

}  // namespace

sending_limits::account_state& sending_limits::of(std::string_view account) {
  return accounts_[lower(account)];
}

void sending_limits::prune(account_state& a, std::int64_t now_ms) {
  while (!a.window.empty() && a.window.front().at_ms <= now_ms - sending_window.count()) {
    a.window.pop_front();
  }
  if (a.hold && a.hold->resumes_at_ms <= now_ms) a.hold.reset();
}

std::int64_t sending_limits::quota_resume(const account_state& a, std::int64_t since_ms,
                                          const hold_policy& policy) {
  // Gmail counts what the account sent in the 24 hours before its answer:
  // it takes mail again once the oldest of those has left the window. It
  // counts mail the relay never saw too (the web interface, other
  // programs), so this may be early: then the next answer holds again, at
  // least retry_initial later, never in a tight loop.
  std::optional<std::int64_t> oldest;
  for (const auto& e : a.window) {
    if (e.at_ms > since_ms - sending_window.count() && e.at_ms <= since_ms) {
      oldest = e.at_ms;
      break;
    }
  }
  if (!oldest) return since_ms + policy.retry_max.count();
  return std::max(*oldest + sending_window.count(), since_ms + policy.retry_initial.count());
}

void sending_limits::record_sent(std::string_view account, std::int64_t at_ms,
                                 std::size_t recipients) {
  auto& a = of(account);
  // Kept in time order: a late record (read back at start) goes in its place.
  auto at = std::upper_bound(a.window.begin(), a.window.end(), at_ms,
                             [](std::int64_t t, const sent_entry& e) { return t < e.at_ms; });
  a.window.insert(at, sent_entry{at_ms, recipients});
}

void sending_limits::restore(std::string_view account, account_hold hold,
                             const hold_policy& policy) {
  auto& a = of(account);
  if (hold.state == sending_state::over_quota && !hold.own_limit) {
    hold.resumes_at_ms = quota_resume(a, hold.since_ms, policy);
  }
  a.throttles = hold.throttles;
  a.hold = std::move(hold);
}

const account_hold& sending_limits::hold_for(std::string_view account,
                                             const provider_answer& answer,
                                             std::string_view reply_line, std::int64_t now_ms,
                                             const hold_policy& policy) {
  auto& a = of(account);
  prune(a, now_ms);
  // Several connections of the account may hear the answer at once: one hold.
  if (a.hold && a.hold->state == answer.state && !a.hold->own_limit) return *a.hold;
  account_hold h;
  h.state = answer.state;
  h.since_ms = now_ms;
  if (answer.state == sending_state::over_quota) {
    h.resumes_at_ms = quota_resume(a, now_ms, policy);
  } else {
    ++a.throttles;
    h.resumes_at_ms =
        now_ms + oauth_relay::backoff(policy.retry_initial, policy.retry_max, a.throttles).count();
  }
  h.throttles = a.throttles;
  h.reason = std::string(answer.meaning) + " (" + std::string(reply_line) + ")";
  a.hold = std::move(h);
  return *a.hold;
}

std::optional<account_hold> sending_limits::check(std::string_view account,
                                                  const config::account_limits& limits,
                                                  std::size_t recipients, std::int64_t now_ms) {
  if (limits.messages_per_day == 0 && limits.recipients_per_day == 0 &&
      limits.messages_per_minute == 0) {
    return std::nullopt;
  }
  auto& a = of(account);
  prune(a, now_ms);
  const auto day = day_hold(a, limits, recipients, now_ms);
  const auto minute = minute_hold(a, limits, now_ms);
  if (!day && !minute) {
    if (a.hold && a.hold->own_limit) a.hold.reset();
    return std::nullopt;
  }
  // Both must have room: the later of the two; the day's reason when it is
  // the day's count that holds (it lasts longer and says more).
  account_hold h = day ? *day : *minute;
  if (day && minute) h.resumes_at_ms = std::max(day->resumes_at_ms, minute->resumes_at_ms);
  a.hold = h;
  return h;
}

std::optional<account_hold> sending_limits::day_hold(const account_state& a,
                                                     const config::account_limits& limits,
                                                     std::size_t recipients, std::int64_t now_ms) {
  if (limits.messages_per_day == 0 && limits.recipients_per_day == 0) return std::nullopt;
  // A message with more recipients than a day allows takes the whole day's
  // allowance: it goes alone, once the window is empty.
  const std::size_t wanted =
      limits.recipients_per_day == 0 ? recipients : std::min(recipients, limits.recipients_per_day);
  std::size_t messages = a.window.size() + a.in_flight_messages;
  std::size_t sent_to = recipients_in(a.window) + a.in_flight_recipients;
  auto fits = [&] {
    return (limits.messages_per_day == 0 || messages + 1 <= limits.messages_per_day) &&
           (limits.recipients_per_day == 0 || sent_to + wanted <= limits.recipients_per_day);
  };
  if (fits()) return std::nullopt;
  // The window has room once enough of its oldest messages have left it;
  // what is still in flight leaves it a full day from now.
  std::int64_t resumes_at = now_ms + sending_window.count();
  for (const auto& e : a.window) {
    --messages;
    sent_to -= e.recipients;
    if (fits()) {
      resumes_at = e.at_ms + sending_window.count();
      break;
    }
  }
  const bool by_messages = limits.messages_per_day != 0 &&
                           a.window.size() + a.in_flight_messages + 1 > limits.messages_per_day;
  return own_hold(now_ms, resumes_at,
                  by_messages
                      ? "limits.messages_per_day (" + std::to_string(limits.messages_per_day) +
                            ") reached: " + std::to_string(a.window.size()) +
                            " messages sent in the last 24 hours"
                      : "limits.recipients_per_day (" + std::to_string(limits.recipients_per_day) +
                            ") reached: " + std::to_string(recipients_in(a.window)) +
                            " recipients in the last 24 hours");
}

std::optional<account_hold> sending_limits::minute_hold(const account_state& a,
                                                        const config::account_limits& limits,
                                                        std::int64_t now_ms) {
  if (limits.messages_per_minute == 0) return std::nullopt;
  // The deliveries of the last minute: the window's newest, at most a minute old.
  const auto first =
      std::upper_bound(a.window.begin(), a.window.end(), now_ms - pacing_window.count(),
                       [](std::int64_t t, const sent_entry& e) { return t < e.at_ms; });
  const auto sent = static_cast<std::size_t>(a.window.end() - first);
  std::size_t messages = sent + a.in_flight_messages;
  if (messages + 1 <= limits.messages_per_minute) return std::nullopt;
  // Room once enough of the minute's oldest are a minute old; what is in
  // flight lands in the window no sooner than now.
  std::int64_t resumes_at = now_ms + pacing_window.count();
  for (auto e = first; e != a.window.end(); ++e) {
    --messages;
    if (messages + 1 <= limits.messages_per_minute) {
      resumes_at = e->at_ms + pacing_window.count();
      break;
    }
  }
  return own_hold(now_ms, resumes_at,
                  "limits.messages_per_minute (" + std::to_string(limits.messages_per_minute) +
                      ") reached: " + std::to_string(sent) + " messages sent in the last minute");
}

account_hold sending_limits::own_hold(std::int64_t now_ms, std::int64_t resumes_at_ms,
                                      std::string reason) {
  account_hold h;
  h.state = sending_state::over_quota;
  h.since_ms = now_ms;
  h.resumes_at_ms = resumes_at_ms;
  h.own_limit = true;
  h.reason = std::move(reason);
  return h;
}

void sending_limits::begin_send(std::string_view account, std::size_t recipients) {
  auto& a = of(account);
  ++a.in_flight_messages;
  a.in_flight_recipients += recipients;
}

void sending_limits::end_send(std::string_view account, std::size_t recipients) {
  auto& a = of(account);
  a.in_flight_messages -= std::min<std::size_t>(a.in_flight_messages, 1);
  a.in_flight_recipients -= std::min(a.in_flight_recipients, recipients);
}

void sending_limits::lift_all() {
  for (auto& [account, a] : accounts_) a.hold.reset();
}

void sending_limits::delivered(std::string_view account) {
  of(account).throttles = 0;
}

std::optional<account_hold> sending_limits::held(std::string_view account, std::int64_t now_ms) {
  auto it = accounts_.find(lower(account));
  if (it == accounts_.end()) return std::nullopt;
  prune(it->second, now_ms);
  return it->second.hold;
}

std::map<std::string, account_hold> sending_limits::holds(std::int64_t now_ms) {
  std::map<std::string, account_hold> out;
  for (auto& [account, a] : accounts_) {
    prune(a, now_ms);
    if (a.hold) out.emplace(account, *a.hold);
  }
  return out;
}

sending_status sending_limits::status(std::string_view account, std::int64_t now_ms) {
  sending_status s;
  auto it = accounts_.find(lower(account));
  if (it == accounts_.end()) return s;
  auto& a = it->second;
  prune(a, now_ms);
  s.sent_messages = a.window.size();
  s.sent_recipients = recipients_in(a.window);
  if (a.hold) {
    s.state = a.hold->state;
    s.resumes_at_ms = a.hold->resumes_at_ms;
    s.reason = a.hold->reason;
  }
  return s;
}

std::map<std::string, sending_status> sending_limits::statuses(std::int64_t now_ms) {
  std::map<std::string, sending_status> out;
  for (const auto& [account, a] : accounts_) out.emplace(account, status(account, now_ms));
  return out;
}

}  // namespace oauth_relay::relay
