// The accounts' sending record, limits and holds, with the time pinned:
// exact resume times from the rolling 24-hour window and the rolling minute
// of messages_per_minute, backoff for throttles, and what is in flight
// counted against the limits.
#include "relay/delivery/sending_limits.hpp"

#include <gtest/gtest.h>

namespace oauth_relay::relay {
namespace {

constexpr std::int64_t t0 = 1'800'000'000'000;  // unix ms
constexpr std::int64_t minute = 60'000;
constexpr std::int64_t day = 24 * 3600 * 1000;
constexpr const char* alice = "alice@example.com";

const hold_policy policy{std::chrono::milliseconds(minute), std::chrono::milliseconds(60 * minute)};

const provider_answer& answer(sending_state s) {
  for (const auto& a : provider_answers()) {
    if (a.state == s) return a;
  }
  throw std::logic_error("no such answer");
}

TEST(sending_limits, counts_the_last_24_hours_only) {
  sending_limits l;
  l.record_sent(alice, t0, 3);
  l.record_sent(alice, t0 + 10 * minute, 1);
  auto s = l.status("ALICE@example.com", t0 + 20 * minute);
  EXPECT_EQ(s.state, sending_state::ok);
  EXPECT_EQ(s.sent_messages, 2u);
  EXPECT_EQ(s.sent_recipients, 4u);
  s = l.status(alice, t0 + day);  // the first has left the window
  EXPECT_EQ(s.sent_messages, 1u);
  EXPECT_EQ(s.sent_recipients, 1u);
}

TEST(sending_limits, the_message_that_would_go_over_messages_per_day_is_held) {
  sending_limits l;
  const config::account_limits limits{3, 0};
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(l.check(alice, limits, 1, t0 + i * minute).has_value());
    l.record_sent(alice, t0 + i * minute, 1);
  }
  const auto hold = l.check(alice, limits, 1, t0 + 5 * minute);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->state, sending_state::over_quota);
  EXPECT_TRUE(hold->own_limit);
  // When the first of the three leaves the window.
  EXPECT_EQ(hold->resumes_at_ms, t0 + day);
  EXPECT_EQ(hold->reason,
            "limits.messages_per_day (3) reached: 3 messages sent in the last 24 hours");
  EXPECT_EQ(l.status(alice, t0 + 6 * minute).state, sending_state::over_quota);
  EXPECT_FALSE(l.check(alice, limits, 1, t0 + day).has_value());
  EXPECT_EQ(l.status(alice, t0 + day).state, sending_state::ok);
}

TEST(sending_limits, recipients_per_day_waits_until_enough_recipients_left_the_window) {
  sending_limits l;
  const config::account_limits limits{0, 10};
  l.record_sent(alice, t0, 2);
  l.record_sent(alice, t0 + minute, 3);
  l.record_sent(alice, t0 + 2 * minute, 4);
  EXPECT_FALSE(l.check(alice, limits, 1, t0 + 3 * minute).has_value());
  // 9 sent; 6 more fit once the first two messages (5 recipients) are out.
  const auto hold = l.check(alice, limits, 6, t0 + 3 * minute);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->resumes_at_ms, t0 + minute + day);
}

TEST(sending_limits, more_recipients_than_a_day_allows_go_alone_once_the_window_is_empty) {
  sending_limits l;
  const config::account_limits limits{0, 5};
  l.record_sent(alice, t0, 1);
  const auto hold = l.check(alice, limits, 8, t0 + minute);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->resumes_at_ms, t0 + day);
  EXPECT_FALSE(l.check(alice, limits, 8, t0 + day).has_value());
}

TEST(sending_limits, messages_in_flight_count_against_the_limit) {
  sending_limits l;
  const config::account_limits limits{2, 0};
  l.begin_send(alice, 1);
  l.begin_send(alice, 1);
  const auto hold = l.check(alice, limits, 1, t0);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->resumes_at_ms, t0 + day);  // they will land in the window now
  l.end_send(alice, 1);
  EXPECT_FALSE(l.check(alice, limits, 1, t0).has_value());
}

TEST(sending_limits, the_message_that_would_go_over_messages_per_minute_waits_for_the_oldest) {
  sending_limits l;
  config::account_limits limits;
  limits.messages_per_minute = 3;
  // Three at t0, t0 + 1 s and t0 + 2 s go at once.
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(l.check(alice, limits, 1, t0 + i * 1000).has_value()) << i;
    l.record_sent(alice, t0 + i * 1000, 1);
  }
  const auto hold = l.check(alice, limits, 1, t0 + 2500);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->state, sending_state::over_quota);
  EXPECT_TRUE(hold->own_limit);
  EXPECT_EQ(hold->since_ms, t0 + 2500);
  // Until the first is exactly a minute old, not a millisecond sooner.
  EXPECT_EQ(hold->resumes_at_ms, t0 + minute);
  EXPECT_EQ(hold->reason,
            "limits.messages_per_minute (3) reached: 3 messages sent in the last minute");
  const auto s = l.status(alice, t0 + minute - 1);
  EXPECT_EQ(s.state, sending_state::over_quota);
  EXPECT_EQ(s.resumes_at_ms, t0 + minute);
  EXPECT_EQ(s.sent_messages, 3u);  // the status counts the day
  EXPECT_TRUE(l.check(alice, limits, 1, t0 + minute - 1).has_value());
  EXPECT_FALSE(l.check(alice, limits, 1, t0 + minute).has_value());
  EXPECT_EQ(l.status(alice, t0 + minute).state, sending_state::ok);
  // The fourth goes; the fifth waits for the second to be a minute old.
  l.record_sent(alice, t0 + minute, 1);
  const auto next = l.check(alice, limits, 1, t0 + minute);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->resumes_at_ms, t0 + 1000 + minute);
  EXPECT_EQ(next->reason,
            "limits.messages_per_minute (3) reached: 3 messages sent in the last minute");
}

TEST(sending_limits, messages_in_flight_count_against_messages_per_minute) {
  sending_limits l;
  config::account_limits limits;
  limits.messages_per_minute = 2;
  l.record_sent(alice, t0, 1);
  l.begin_send(alice, 1);
  // One sent and one on its way: the sent one leaving makes room.
  auto hold = l.check(alice, limits, 1, t0 + 10);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->resumes_at_ms, t0 + minute);
  EXPECT_EQ(hold->reason,
            "limits.messages_per_minute (2) reached: 1 messages sent in the last minute");
  // Two on their way: they land in the window no sooner than now.
  l.begin_send(alice, 1);
  hold = l.check(alice, limits, 1, t0 + minute);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->resumes_at_ms, t0 + 2 * minute);
  l.end_send(alice, 1);
  EXPECT_FALSE(l.check(alice, limits, 1, t0 + minute).has_value());
}

TEST(sending_limits, the_later_of_the_day_and_the_minute_wins_with_the_days_reason) {
  sending_limits l;
  const config::account_limits limits{2, 0, 2};
  l.record_sent(alice, t0, 1);
  l.record_sent(alice, t0 + 1000, 1);
  const auto hold = l.check(alice, limits, 1, t0 + 2000);
  ASSERT_TRUE(hold.has_value());
  EXPECT_EQ(hold->resumes_at_ms, t0 + day);
  EXPECT_EQ(hold->reason,
            "limits.messages_per_day (2) reached: 2 messages sent in the last 24 hours");
  // A minute later only the day's count holds, to the same millisecond.
  EXPECT_EQ(l.check(alice, limits, 1, t0 + 2 * minute)->resumes_at_ms, t0 + day);
}

TEST(sending_limits, messages_per_minute_alone_ignores_the_rest_of_the_day) {
  sending_limits l;
  config::account_limits limits;
  limits.messages_per_minute = 30;
  // 29 a minute for an hour: never held.
  for (int m = 0; m < 60; ++m) {
    for (int i = 0; i < 29; ++i) {
      const std::int64_t at = t0 + m * minute + i * 2000;
      ASSERT_FALSE(l.check(alice, limits, 1, at).has_value()) << m << " " << i;
      l.record_sent(alice, at, 1);
    }
  }
  EXPECT_EQ(l.status(alice, t0 + 60 * minute).sent_messages, 60u * 29u);
}

TEST(sending_limits, no_limits_never_hold) {
  sending_limits l;
  for (int i = 0; i < 1000; ++i) l.record_sent(alice, t0, 5);
  EXPECT_FALSE(l.check(alice, config::account_limits{}, 100, t0).has_value());
}

TEST(sending_limits, gmails_daily_limit_resumes_when_the_oldest_of_the_window_leaves_it) {
  sending_limits l;
  l.record_sent(alice, t0, 1);
  l.record_sent(alice, t0 + 30 * minute, 1);
  const auto& hold =
      l.hold_for(alice, answer(sending_state::over_quota),
                 "550 5.4.5 Daily user sending limit exceeded.", t0 + 40 * minute, policy);
  EXPECT_EQ(hold.state, sending_state::over_quota);
  EXPECT_EQ(hold.resumes_at_ms, t0 + day);
  EXPECT_EQ(hold.reason,
            "Gmail's daily sending limit for the account is used up (550 5.4.5 Daily user "
            "sending limit exceeded.)");
  auto s = l.status(alice, t0 + 41 * minute);
  EXPECT_EQ(s.state, sending_state::over_quota);
  EXPECT_EQ(s.resumes_at_ms, t0 + day);
  EXPECT_EQ(l.status(alice, t0 + day).state, sending_state::ok);
}

TEST(sending_limits, gmails_daily_limit_without_a_record_probes_after_retry_max) {
  sending_limits l;
  const auto& hold =
      l.hold_for(alice, answer(sending_state::over_quota), "550 5.4.5 Daily", t0, policy);
  EXPECT_EQ(hold.resumes_at_ms, t0 + 60 * minute);
}

TEST(sending_limits, gmails_daily_limit_waits_at_least_retry_initial) {
  sending_limits l;
  l.record_sent(alice, t0 - day + 1, 1);  // leaves the window a millisecond from now
  const auto& hold =
      l.hold_for(alice, answer(sending_state::over_quota), "550 5.4.5 Daily", t0, policy);
  EXPECT_EQ(hold.resumes_at_ms, t0 + minute);
}

TEST(sending_limits, throttles_back_off_and_start_over_after_a_delivery) {
  sending_limits l;
  const auto& throttled = answer(sending_state::throttled);
  EXPECT_EQ(l.hold_for(alice, throttled, "421 4.7.0", t0, policy).resumes_at_ms, t0 + minute);
  // Another connection hears it during the same hold: it does not stack up.
  EXPECT_EQ(l.hold_for(alice, throttled, "421 4.7.0", t0 + 1, policy).resumes_at_ms, t0 + minute);
  EXPECT_EQ(l.hold_for(alice, throttled, "421 4.7.0", t0 + minute, policy).resumes_at_ms,
            t0 + 3 * minute);
  EXPECT_EQ(l.hold_for(alice, throttled, "421 4.7.0", t0 + 3 * minute, policy).resumes_at_ms,
            t0 + 7 * minute);
  l.delivered(alice);
  EXPECT_EQ(l.hold_for(alice, throttled, "421 4.7.0", t0 + 7 * minute, policy).resumes_at_ms,
            t0 + 8 * minute);
}

TEST(sending_limits, a_restored_quota_hold_is_worked_out_again_from_the_record) {
  sending_limits l;
  l.record_sent(alice, t0 - day + 5 * minute, 1);
  account_hold saved;
  saved.state = sending_state::over_quota;
  saved.since_ms = t0 - minute;
  saved.resumes_at_ms = t0 + 20 * 3600 * 1000;  // as it was when Gmail answered
  saved.reason = "Gmail's daily sending limit";
  l.restore(alice, saved, policy);
  const auto held = l.held(alice, t0);
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->resumes_at_ms, t0 + 5 * minute);
  EXPECT_FALSE(l.held(alice, t0 + 5 * minute).has_value());
}

TEST(sending_limits, accounts_are_held_apart) {
  sending_limits l;
  l.hold_for(alice, answer(sending_state::throttled), "421 4.7.0", t0, policy);
  EXPECT_TRUE(l.held(alice, t0).has_value());
  EXPECT_FALSE(l.held("bob@example.com", t0).has_value());
  EXPECT_EQ(l.holds(t0).size(), 1u);
}

}  // namespace
}  // namespace oauth_relay::relay
