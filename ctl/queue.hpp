// oauth-relayctl queue, queue retry/delete and status: clients of the
// daemon's health socket (GET /queue, POST /queue/retry, POST /queue/delete,
// GET /health), rendered for people or passed through as JSON.
#pragma once

#include <string>
#include <vector>

#include "ctl/common.hpp"

namespace oauth_relay::ctl {

int run_queue_list(const context& ctx, bool json);
// `all` or `ids` (not both): makes them due now. Exit 1 when some ids are not queued.
int run_queue_retry(const context& ctx, const std::vector<std::string>& ids, bool all, bool json);
// Exit 1 when some ids are not queued.
int run_queue_delete(const context& ctx, const std::vector<std::string>& ids, bool json);
// Exit 0 when the daemon says ok, 1 when degraded (the problems listed).
int run_status(const context& ctx, bool json);

}  // namespace oauth_relay::ctl
