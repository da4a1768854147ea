// The administrative queries behind the health socket: queue figures, the
// listing, and retrying messages now. (Deleting goes through the scheduler,
// which must take back messages it holds: delivery_queue::remove.)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "relay/spool/records.hpp"
#include "relay/spool/writer.hpp"

namespace oauth_relay::relay {

class admin_queries {
 public:
  explicit admin_queries(spool_writer& writer) : writer_(writer) {}

  // Depth, deferred count and oldest arrival, in constant time.
  boost::asio::awaitable<spool_result<queue_summary>> summary();

  // At most `limit` queued messages with their recipients, in arrival order,
  // from the position after `after` (0: from the start); see queue_page.
  boost::asio::awaitable<spool_result<queue_page>> list(std::int64_t after, std::size_t limit);

  // Makes the messages `ids` (every message when `all`) due at `when_ms` at
  // the latest; `changed` counts the queued ones, `unknown` lists the rest.
  boost::asio::awaitable<spool_result<queue_change>> retry(std::vector<std::string> ids, bool all,
                                                           std::int64_t when_ms);

 private:
  spool_writer& writer_;
};

}  // namespace oauth_relay::relay
