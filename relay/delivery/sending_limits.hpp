// Each account's sending state: what it sent in the last 24 hours (the
// relay's own record, persisted in queue.db's sent_log), its `limits:`, and
// the hold Gmail's quota and rate answers put on it. Pure: the time comes in
// as an argument (sending_limits_test.cpp); the scheduler persists.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "relay/delivery/provider_answers.hpp"

namespace oauth_relay::relay {

// Gmail's quotas are over a rolling 24 hours (Gmail Help, "Gmail sending
// limits"); so are the relay's own limits.
inline constexpr std::chrono::milliseconds sending_window{24 * 3600 * 1000};
// limits.messages_per_minute counts over a rolling minute, as Exchange
// Online's 30 messages a minute per mailbox does.
inline constexpr std::chrono::milliseconds pacing_window{60 * 1000};

// One delivered message as the window counts it.
struct sent_entry {
  std::int64_t at_ms = 0;
  std::size_t recipients = 0;
};

// A hold on an account: no mail of it is sent until `resumes_at_ms`.
struct account_hold {
  sending_state state = sending_state::ok;
  std::int64_t since_ms = 0;       // when it began (Gmail's answer, or the count)
  std::int64_t resumes_at_ms = 0;  // when the account sends again by itself
  int throttles = 0;               // throttled answers in a row, for the backoff
  std::string reason;              // one line: what happened and what to do
  // The relay's own limits: worked out again from the window each time, so
  // never persisted.
  bool own_limit = false;
};

// What `accounts`, /health and the metrics show of one account.
struct sending_status {
  sending_state state = sending_state::ok;
  std::optional<std::int64_t> resumes_at_ms;
  std::string reason;
  std::size_t sent_messages = 0;  // in the last 24 hours
  std::size_t sent_recipients = 0;
};

// The backoff of a throttled account and the shortest over_quota hold.
struct hold_policy {
  std::chrono::milliseconds retry_initial{60'000};
  std::chrono::milliseconds retry_max{3'600'000};
};

class sending_limits {
 public:
  // Accounts are compared without case, as Google does.
  void record_sent(std::string_view account, std::int64_t at_ms, std::size_t recipients);
  // A hold read back from queue.db at start (an over_quota one is worked out
  // again from the window: the record may have changed since).
  void restore(std::string_view account, account_hold hold, const hold_policy& policy);

  // Gmail gave `answer` for `account` at `now_ms`: the hold it puts on the
  // account. over_quota: until the oldest message of the window before then
  // leaves it (at least retry_initial; retry_max without any record);
  // throttled: the backoff of its throttles in a row. An answer while a hold
  // of the same kind is on (another connection's) does not stack up.
  const account_hold& hold_for(std::string_view account, const provider_answer& answer,
                               std::string_view reply_line, std::int64_t now_ms,
                               const hold_policy& policy);

  // Whether a message with `recipients` recipients may go now under
  // `limits`, counting what is in flight: nothing when it may; else the hold
  // until the window has room (the day's, and the last minute's for
  // messages_per_minute: the later of the two), which is then on the account.
  std::optional<account_hold> check(std::string_view account, const config::account_limits& limits,
                                    std::size_t recipients, std::int64_t now_ms);
  // A message is on its way (counted against the limits until finished).
  void begin_send(std::string_view account, std::size_t recipients);
  void end_send(std::string_view account, std::size_t recipients);

  // Ends every hold (the throttle counts stay, so the backoff goes on).
  void lift_all();
  // A delivery went through: the throttle backoff starts over.
  void delivered(std::string_view account);

  // The hold on `account` at `now_ms`, if one is on (an ended one is dropped).
  std::optional<account_hold> held(std::string_view account, std::int64_t now_ms);
  // The accounts on hold at `now_ms`, with their holds.
  std::map<std::string, account_hold> holds(std::int64_t now_ms);
  sending_status status(std::string_view account, std::int64_t now_ms);
  // Every account with a record or a hold.
  std::map<std::string, sending_status> statuses(std::int64_t now_ms);

 private:
  struct account_state {
    std::deque<sent_entry> window;  // oldest first
    std::size_t in_flight_messages = 0;
    std::size_t in_flight_recipients = 0;
    std::optional<account_hold> hold;
    int throttles = 0;
  };
  account_state& of(std::string_view account);
  static void prune(account_state& a, std::int64_t now_ms);
  static std::int64_t quota_resume(const account_state& a, std::int64_t since_ms,
                                   const hold_policy& policy);
  // The hold of the relay's own limits, if `a` has no room now: the day's
  // counts, and messages_per_minute's.
  static std::optional<account_hold> day_hold(const account_state& a,
                                              const config::account_limits& limits,
                                              std::size_t recipients, std::int64_t now_ms);
  static std::optional<account_hold> minute_hold(const account_state& a,
                                                 const config::account_limits& limits,
                                                 std::int64_t now_ms);
  static account_hold own_hold(std::int64_t now_ms, std::int64_t resumes_at_ms, std::string reason);

  std::map<std::string, account_state> accounts_;  // by lowercased address
};

}  // namespace oauth_relay::relay
