// TEMPORARY until merge: the current spool and token manager behind the
// interfaces the delivery scheduler takes (delivery_queue, token_source),
// until their rewrites implement those interfaces themselves.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "auth/token_manager.hpp"
#include "auth/token_source.hpp"
#include "relay/spool/delivery_queue.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::daemon {

// TEMPORARY until merge: relay::spool's async_* functions as a delivery_queue.
// The current spool reports some failures as empty answers; they pass
// through as they are (a missing content is not_found).
class legacy_delivery_queue final : public relay::delivery_queue {
 public:
  explicit legacy_delivery_queue(relay::spool& spool) : spool_(spool) {}

  boost::asio::awaitable<relay::spool_result<std::vector<relay::queued_message>>> due(
      std::int64_t now_ms, std::size_t limit, relay::message_id_set busy) override {
    auto found =
        co_await spool_.async_due(now_ms, limit, std::move(busy), boost::asio::use_awaitable);
    co_return found;
  }

  boost::asio::awaitable<relay::spool_result<std::optional<std::int64_t>>> next_due() override {
    auto next = co_await spool_.async_next_due(boost::asio::use_awaitable);
    co_return next;
  }

  boost::asio::awaitable<relay::spool_result<std::string>> content(std::string id) override {
    auto content = co_await spool_.async_content(id, boost::asio::use_awaitable);
    if (!content) co_return failure(relay::spool_errc::not_found, "no content for " + id);
    co_return std::move(*content);
  }

  boost::asio::awaitable<relay::spool_result<void>> record(
      relay::delivery_record record, std::optional<relay::generated_message> bounce) override {
    auto stored = co_await spool_.async_record(std::move(record), std::move(bounce),
                                               boost::asio::use_awaitable);
    switch (stored.status) {
      case relay::store_status::stored:
        co_return relay::spool_result<void>();
      case relay::store_status::no_space:
        co_return failure(relay::spool_errc::no_space, stored.detail);
      case relay::store_status::failed:
        break;
    }
    co_return failure(relay::spool_errc::failed, stored.detail);
  }

  boost::asio::awaitable<relay::spool_result<std::size_t>> postpone(std::string account,
                                                                    std::int64_t until_ms,
                                                                    std::string reason) override {
    auto count = co_await spool_.async_postpone(std::move(account), until_ms, std::move(reason),
                                                boost::asio::use_awaitable);
    co_return count;
  }

  boost::asio::awaitable<relay::spool_result<std::size_t>> reschedule(
      std::string account, std::int64_t when_ms) override {
    auto count =
        co_await spool_.async_reschedule(std::move(account), when_ms, boost::asio::use_awaitable);
    co_return count;
  }

  boost::asio::awaitable<relay::spool_result<relay::queue_change>> remove(
      std::vector<std::string> ids) override {
    auto change = co_await spool_.async_delete(std::move(ids), boost::asio::use_awaitable);
    if (!change.error.empty()) co_return failure(relay::spool_errc::failed, change.error);
    co_return change;
  }

 private:
  static relay::spool_failure failure(relay::spool_errc code, std::string detail) {
    return relay::spool_failure(code, std::move(detail));
  }

  relay::spool& spool_;
};

}  // namespace oauth_relay::daemon
