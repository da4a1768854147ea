// What the delivery scheduler needs of the spool: the due messages, their
// content, and a place to record each attempt's outcome. The spool is the
// real one; unit tests put a stand-in behind it. Every answer is a value or
// a spool_failure, never an empty result standing for an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "relay/envelope.hpp"
#include "relay/spool/content.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

class delivery_queue {
 public:
  virtual ~delivery_queue() = default;

  // The due messages `request` asks for: oldest first, and the fresh share
  // among the arrivals after its position (records.hpp).
  virtual boost::asio::awaitable<spool_result<due_mail>> due(due_request request) = 0;

  // The earliest next attempt of any queued message (unix ms); nothing when
  // the queue is empty.
  virtual boost::asio::awaitable<spool_result<std::optional<std::int64_t>>> next_due() = 0;

  // A message's content (the Received: header and the data, CRLF lines),
  // to be read in pieces: a large one stays in its file. not_found: the
  // message left the queue; lost: its content is gone for good; failed: it
  // could not be opened now.
  virtual boost::asio::awaitable<spool_result<message_content>> content(std::string id) = 0;

  // Records an attempt and, in the same transaction, stores `bounce`.
  virtual boost::asio::awaitable<spool_result<void>> record(
      delivery_record record, std::optional<generated_message> bounce) = 0;

  // How long after its arrival a parked message must come up again anyway.
  struct parking_limits {
    std::int64_t lifetime_ms = 0;       // it expires then (queue.lifetime)
    std::int64_t delay_warning_ms = 0;  // its delay warning is due then, unless sent (0: none)
  };
  // Puts off the due messages of `account` until `until_ms` with `reason` as
  // their last error (an account that cannot send at all), but each no later
  // than its `limits`; how many.
  virtual boost::asio::awaitable<spool_result<std::size_t>> postpone(std::string account,
                                                                     std::int64_t until_ms,
                                                                     parking_limits limits,
                                                                     std::string reason) = 0;

  // Makes the messages of `account` (every message when empty) due at
  // `when_ms` at the latest; how many changed. A long queue is changed in
  // slices, each its own short job, so mail arriving meanwhile is stored
  // between them.
  virtual boost::asio::awaitable<spool_result<std::size_t>> reschedule(std::string account,
                                                                       std::int64_t when_ms) = 0;

  // The accounts' sending record since `since_ms` and the holds that end
  // after it (read once at start).
  virtual boost::asio::awaitable<spool_result<sending_record>> sending_history(
      std::int64_t since_ms) = 0;
  // Stores the hold on `account`, or removes it when `hold` is unset.
  virtual boost::asio::awaitable<spool_result<void>> save_hold(std::string account,
                                                               std::optional<hold_row> hold) = 0;

  // Removes the messages `ids` (rows, recipients and content). The caller
  // makes sure none is being delivered.
  virtual boost::asio::awaitable<spool_result<queue_change>> remove(
      std::vector<std::string> ids) = 0;
};

}  // namespace oauth_relay::relay
