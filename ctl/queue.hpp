// oauth-relayctl queue, queue retry/delete and status: clients of the
// daemon's health socket (GET /queue, POST /queue/retry, POST /queue/delete,
// GET /health), rendered for people or passed through as JSON.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ctl/common.hpp"

namespace oauth_relay::ctl {

// One page of the listing (GET /queue?limit=N&after=CURSOR): the daemon
// never sends the whole of a long queue; the text says how to get the next.
inline constexpr std::size_t default_page_limit = 100;  // the daemon's default too
struct queue_page {
  std::size_t limit = default_page_limit;
  std::string after;  // empty: from the oldest
};
int run_queue_list(const context& ctx, const queue_page& page, bool json);
// `all` or `ids` (not both): makes them due now. Exit 1 when some ids are not queued.
int run_queue_retry(const context& ctx, const std::vector<std::string>& ids, bool all, bool json);
// Exit 1 when some ids are not queued.
int run_queue_delete(const context& ctx, const std::vector<std::string>& ids, bool json);
// Exit 0 when the daemon says ok, 1 when degraded (the problems listed).
int run_status(const context& ctx, bool json);

}  // namespace oauth_relay::ctl
