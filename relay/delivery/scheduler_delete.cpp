// The administrator's deletes (oauth-relayctl queue delete): messages
// waiting in memory are taken back and deleted at once, one in the middle of
// its attempt right after the attempt is recorded. A part of the delivery
// scheduler (scheduler.cpp).
#include <algorithm>

#include <boost/asio/co_spawn.hpp>

#include "config/log.hpp"
#include "relay/delivery/scheduler_parts.hpp"

namespace oauth_relay::relay {

void delivery_scheduler::delete_messages(std::vector<std::string> ids,
                                         std::function<void(spool_result<queue_change>)> done) {
  std::vector<std::string> now;
  std::size_t later = 0;
  for (auto& id : ids) {
    if (claimed_.count(id) == 0) {
      removing_.insert(id);
      now.push_back(std::move(id));
      continue;
    }
    bool was_waiting = false;
    for (auto& [account, q] : queues_) {
      if ((was_waiting = q->waiting.erase(id))) break;
    }
    if (was_waiting) {
      claimed_.erase(id);
      removing_.insert(id);
      now.push_back(std::move(id));
    } else if (doomed_.insert(id).second) {
      ++later;
    }
  }
  asio::co_spawn(executor_, remove_now(std::move(now), later, std::move(done)),
                 log_failure("message_delete_failed"));
}

asio::awaitable<void> delivery_scheduler::remove_now(
    std::vector<std::string> ids, std::size_t later,
    std::function<void(spool_result<queue_change>)> done) {
  auto removed = co_await queue_.remove(ids);
  for (const auto& id : ids) removing_.erase(id);
  if (removed) removed->changed += later;
  done(std::move(removed));
}

asio::awaitable<void> delivery_scheduler::delete_doomed(const std::string& id) {
  doomed_.erase(id);
  std::vector<std::string> ids{id};
  auto result = co_await queue_.remove(std::move(ids));
  if (!result) {
    log::error("message_delete_failed").kv("id", id).kv("error", result.error().detail);
  } else if (result->changed == 0) {
    log::notice("message_delete_skipped").kv("id", id).kv("reason", "it left the queue meanwhile");
  } else {
    log::notice("message_deleted").kv("id", id).kv("after", "its delivery attempt");
  }
}

}  // namespace oauth_relay::relay
