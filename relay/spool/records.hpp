// What the spool keeps and answers: queued messages and their recipients,
// delivery records, queue figures, and failures as values (a read that
// failed is an error, never an empty result).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include <boost/system/result.hpp>

#include "relay/envelope.hpp"

namespace oauth_relay::relay {

// Why a spool operation did not happen.
enum class spool_errc {
  not_found,  // the message is not (or no longer) queued
  no_space,   // the disk or quota is full (SQLITE_FULL, ENOSPC, EDQUOT): 452 to a client
  failed,     // any other I/O or database error: 451 to a client
  // The message is queued but its content is gone for good (its file is
  // missing or has another size than was stored, its row names none): it
  // can never be sent, and trying again would not change that.
  lost,
};

struct spool_failure {
  spool_errc code = spool_errc::failed;
  std::string detail;         // for the log: what failed and why
  spool_failure() = default;  // Boost 1.81's result<T, E>::error() needs it
  spool_failure(spool_errc c, std::string d) : code(c), detail(std::move(d)) {}
};

// The spool cannot be opened or used at all (bad state_dir, corrupt
// database), or value() was called on a failed spool_result.
class spool_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Lets boost::system::result<T, spool_failure>::value() throw on an error.
[[noreturn]] inline void throw_exception_from_error(const spool_failure& e,
                                                    const boost::source_location&) {
  throw spool_error(e.detail);
}

// A value, or why there is none.
template <typename T>
using spool_result = boost::system::result<T, spool_failure>;

// A set of message ids that can be searched with a string_view (no copy).
struct message_id_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view id) const noexcept {
    return std::hash<std::string_view>{}(id);
  }
};
using message_id_set = std::unordered_set<std::string, message_id_hash, std::equal_to<>>;

// Stored as 0, 1, 2 in recipients.status.
enum class recipient_status { pending = 0, delivered = 1, failed = 2 };

struct queued_recipient {
  recipient rcpt;
  recipient_status status = recipient_status::pending;
  std::string last_reply;
};

struct queued_message {
  std::string id;
  std::int64_t received_at = 0;  // unix seconds
  envelope env;
  std::uint64_t size = 0;
  int attempts = 0;
  std::int64_t next_attempt_ms = 0;
  std::string last_error;
  bool delay_warned = false;  // its sender was sent the queue.delay_warning notice
  std::vector<queued_recipient> recipients;
};

// What a delivery attempt changed about one recipient.
struct recipient_update {
  std::size_t position = 0;  // index in queued_message::recipients
  recipient_status status = recipient_status::pending;
  std::string reply;  // the upstream's reply, for the queue listing and bounces
};

// What a delivery attempt changed about one message.
struct delivery_record {
  std::string id;
  std::vector<recipient_update> recipients;
  bool finished = false;             // nothing pending any more: the message leaves the queue
  std::int64_t next_attempt_ms = 0;  // when not finished
  std::string last_error;
  bool count_attempt = true;
  bool delay_warned = false;  // a delay warning is stored with this record: never another
  // Recipients this attempt delivered: when some, one row of the account's
  // sending record (sent_log) is stored with it, at sent_at_ms.
  std::size_t sent_recipients = 0;
  std::string account;
  std::int64_t sent_at_ms = 0;
};

// One look at the queue for the delivery scheduler: the due messages,
// oldest first, and apart from them the ones that arrived since `arrived_after`
// (a position in arrival order), so that fresh mail has a share of every pass
// however long the backlog before it.
struct due_request {
  std::int64_t now_ms = 0;
  std::size_t oldest = 0;  // at most this many due messages, oldest first
  std::size_t fresh = 0;   // at most this many due arrivals after `arrived_after`
  // Unset: no arrivals are looked at; the answer says where arrival order
  // ends now, the place to look from next time.
  std::optional<std::int64_t> arrived_after;
  message_id_set busy;  // left out (already being delivered)
};

struct due_mail {
  std::vector<queued_message> oldest;
  std::vector<queued_message> fresh;  // none of them also in `oldest`
  // How far in arrival order the look for fresh mail went: the place to look
  // from next time (messages passed over were busy or not due, and come up
  // again oldest first when due).
  std::int64_t arrived_through = 0;
};

// One delivered message of an account's sending record (sent_log).
struct sent_row {
  std::string account;
  std::int64_t sent_at_ms = 0;
  std::size_t recipients = 0;
};

// A hold Gmail put on an account (account_holds), as stored.
struct hold_row {
  std::string account;
  std::string state;  // "throttled" or "over_quota"
  std::int64_t since_ms = 0;
  std::int64_t resumes_at_ms = 0;
  int throttles = 0;
  std::string reason;
};

// What the accounts sent in the last 24 hours and the holds still on.
struct sending_record {
  std::vector<sent_row> sent;  // oldest first
  std::vector<hold_row> holds;
};

// Queue figures for the health socket, counted without loading messages.
struct queue_summary {
  std::size_t depth = 0;
  std::size_t deferred = 0;  // messages that have had at least one failed attempt
  std::optional<std::int64_t> oldest_received_at;  // unix seconds; unset when empty
};

// A page of the queue listing. Positions are the messages' places in arrival
// order; a page starts after a position, so paging stays right while
// messages leave the queue or arrive between two pages.
struct queue_page {
  std::vector<queued_message> messages;
  std::optional<std::int64_t> next_after;  // the next page's start; unset on the last page
};

// What an administrator's retry or delete did.
struct queue_change {
  std::size_t changed = 0;           // messages made due, or deleted
  std::vector<std::string> unknown;  // ids that are not queued
};

}  // namespace oauth_relay::relay
