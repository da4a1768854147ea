// Builds the delivery status notification (RFC 3464 inside RFC 6522
// multipart/report) that tells an envelope sender which recipients failed.
// Pure: the scheduler stores the result with the spool.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "relay/envelope.hpp"

namespace oauth_relay::relay {

// A report returns the original whole (RET=FULL) up to this size; a larger
// one is returned as its header alone (text/rfc822-headers, RFC 6522 §3),
// and the report says so. RET is a request (RFC 3461 §4.3): a copy of a
// 35 MB message would likely be refused on its way back, and would be held
// in memory and stored again here.
inline constexpr std::uint64_t bounce_quote_limit = 1024 * 1024;

struct failed_recipient {
  recipient rcpt;
  std::string status;      // RFC 3463 code, e.g. "5.1.1"
  std::string diagnostic;  // the upstream's reply ("550-5.1.1 ..." joined) or the relay's reason
  bool from_upstream = true;
};

struct bounce_input {
  std::string reporting_host;     // the relay's hostname
  std::string upstream_host;      // Remote-MTA when the reason came from upstream
  std::string original_id;        // queue id of the failed message
  std::int64_t arrival_time = 0;  // unix seconds
  std::int64_t now = 0;           // unix seconds
  envelope original;              // sender, account, DSN parameters
  // The recipients reported: those that failed, or with `delayed` those
  // still pending (status 4.x.x).
  std::vector<failed_recipient> failed;
  // The message as queued, when it was read: whole, or when original_size
  // is over bounce_quote_limit, its first octets (bounce_quote_limit at most).
  std::optional<std::string_view> original_content;
  std::uint64_t original_size = 0;
  // A delay warning (RFC 3464 Action: delayed) instead of a failure report:
  // the message is still queued and retried until `retry_until` (unix seconds).
  bool delayed = false;
  std::int64_t retry_until = 0;
};

// An xtext value (RFC 3461 §4: ENVID, ORCPT's address) for a report: "+XX"
// is decoded where it stands for a printable ASCII character, and kept as it
// is otherwise (a CR, LF, NUL, space or 8-bit byte never reaches the report).
std::string decode_xtext(std::string_view text);

// Whether the sender asked not to hear about this recipient's failure
// (NOTIFY=NEVER, or NOTIFY without FAILURE).
bool wants_failure_notice(const recipient& rcpt);

// Whether the sender wants to hear that this recipient is delayed: NOTIFY
// with DELAY, or no NOTIFY at all (RFC 3461 §4.1 leaves that default to the
// relay; it sends one only where queue.delay_warning is set).
bool wants_delay_notice(const recipient& rcpt);

// Nothing when no notice is due: a null sender (bounces are never bounced)
// or no recipient that wants one. Otherwise the bounce, from the null sender
// to the original sender, through the original's account.
std::optional<generated_message> make_bounce(const bounce_input& input);

}  // namespace oauth_relay::relay
