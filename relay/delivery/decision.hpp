// What a delivery attempt means for a queued message, as pure code: the
// outcome goes in (per-recipient results, or why nothing was sent), and out
// come the record to store, the bounce to store with it, and what to count
// and log. No I/O and no clock, so it is table-tested (decision_test.cpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "auth/oauth_errors.hpp"
#include "relay/delivery/provider_answers.hpp"
#include "relay/delivery/upstream.hpp"
#include "relay/envelope.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

// The rules a decision follows (queue.* and the names a bounce carries).
struct delivery_policy {
  std::chrono::milliseconds retry_initial{60'000};
  std::chrono::milliseconds retry_max{3'600'000};
  std::chrono::seconds lifetime{5 * 24 * 3600};  // from arrival; then pending recipients fail
  std::chrono::seconds delay_warning{0};         // from arrival; then one delay notice (0: never)
  std::string reporting_host;                    // the relay's hostname (Reporting-MTA)
  std::string upstream_host;                     // Remote-MTA of upstream replies

  // The wait after `failures` failed attempts in a row (1 for the first):
  // retry_initial, doubled for each further one, at most retry_max.
  std::chrono::milliseconds backoff(int failures) const;
};

// The upstream answered the transaction: `result.recipients` holds one result
// per pending recipient of the message, in their order.
struct sent_upstream {
  send_result result;
};

// Nothing was sent: no connection, no login, no token, unreadable content.
struct not_sent {
  std::string reason;  // one line naming the cause and what to do
  // When to try again if the cause knows (an account waiting for a person
  // waits retry_max); unset: the message's own backoff.
  std::optional<std::chrono::milliseconds> retry_after;
  // The upstream's reply that refused the connection or the login, when one
  // came: a rate answer (provider_answers.hpp) holds the account.
  std::optional<smtp::reply> refusal;
};

// Found past queue.lifetime before sending: not attempted, its pending
// recipients fail with 4.4.7 whatever the clock says now.
struct too_old {};

// The content is gone for good (spool_errc::lost): not attempted, its
// pending recipients fail now with 5.3.0 (RFC 3463 §3.4, mail system) and
// `reason`; the bounce says why it carries no copy.
struct content_lost {
  std::string reason;
};

using attempt = std::variant<sent_upstream, not_sent, too_old, content_lost>;

// How the message stands after the attempt, for the log line's event.
enum class message_outcome {
  delivered,  // finished, every recipient delivered ("delivered")
  failed,     // finished, at least one recipient failed ("delivery_failed")
  deferred,   // recipients still pending: queued again ("delivery_deferred")
};

// What to count and log once the decision is stored.
struct attempt_report {
  message_outcome outcome = message_outcome::deferred;
  std::size_t delivered_now = 0;  // recipients delivered by this attempt
  std::size_t failed = 0;         // recipients failed, on this attempt or earlier
  int attempt_number = 1;         // this attempt, counting from 1
  // Why recipients are still pending, or what the upstream said (may be
  // empty when it said nothing special); for the log and the account's health.
  std::string reason;
  // The attempt counters (delivery_attempts_total by result).
  bool counts_delivered = false;  // something was delivered
  bool counts_deferred = false;   // the message is queued again
  bool counts_failed = false;     // the upstream answered and the message finished with failures
  // An attempt that reached the upstream, delivered nothing and left the
  // message queued: one more temporary failure in a row for the account.
  // Not when Gmail asked for a pause: that is the account's hold, not a fault.
  bool account_failure = false;
  // Gmail answered about the account's quota or rate: the account is held.
  sending_state held = sending_state::ok;
};

struct delivery_decision {
  delivery_record record;  // to store
  // To store in the same transaction: the bounce of a finished message, or
  // the delay warning of one still queued (record.delay_warned).
  std::optional<generated_message> bounce;
  attempt_report report;
};

// A quota or rate answer in what happened (provider_answers.hpp): the
// entry, and the reply on one line; the most severe when there are several.
struct answer_found {
  const provider_answer* answer = nullptr;
  std::string reply;
};
std::optional<answer_found> provider_answer_in(const attempt& what_happened);

// The first upstream reply of the attempt that names a fix the administrator
// applies in the provider's console (Exchange's 554 5.2.252 SendAsDenied),
// as cause and fix for `account`; nothing for every other reply.
std::optional<auth::advice> provider_advice_in(const attempt& what_happened,
                                               std::string_view account);

// Whether `message` has been queued for queue.lifetime or longer at `now_ms`.
bool past_lifetime(const queued_message& message, const delivery_policy& policy,
                   std::int64_t now_ms);

// Whether `message`'s sender is due its one delay warning at `now_ms`.
bool delay_warning_due(const queued_message& message, const delivery_policy& policy,
                       std::int64_t now_ms);

// The decision for one attempt of `message` (as it was queued before it).
// `content` is the message as queued, quoted by a bounce: whole, or its
// first bounce_quote_limit octets when message.size is more; unset when it
// was not read (a bounce then carries no copy). A quota or rate answer never
// fails a recipient: it stays pending, and the message waits for
// `held_until_ms` (the account's hold) when given, else its backoff.
delivery_decision decide(const queued_message& message, const attempt& what_happened,
                         const delivery_policy& policy, std::int64_t now_ms,
                         std::optional<std::string_view> content,
                         std::optional<std::int64_t> held_until_ms = std::nullopt);

}  // namespace oauth_relay::relay
