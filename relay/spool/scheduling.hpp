// The scheduling queries: what the delivery scheduler asks of the spool (due
// mail, content, attempt records, postponing and rescheduling, removal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "relay/spool/delivery_queue.hpp"
#include "relay/spool/writer.hpp"

namespace oauth_relay::relay {

class scheduling_queries final : public delivery_queue {
 public:
  explicit scheduling_queries(spool_writer& writer) : writer_(writer) {}

  boost::asio::awaitable<spool_result<due_mail>> due(due_request request) override;
  boost::asio::awaitable<spool_result<std::optional<std::int64_t>>> next_due() override;
  boost::asio::awaitable<spool_result<message_content>> content(std::string id) override;
  boost::asio::awaitable<spool_result<void>> record(
      delivery_record record, std::optional<generated_message> bounce) override;
  boost::asio::awaitable<spool_result<std::size_t>> postpone(std::string account,
                                                             std::int64_t until_ms,
                                                             parking_limits limits,
                                                             std::string reason) override;
  boost::asio::awaitable<spool_result<std::size_t>> reschedule(std::string account,
                                                               std::int64_t when_ms) override;
  boost::asio::awaitable<spool_result<sending_record>> sending_history(
      std::int64_t since_ms) override;
  boost::asio::awaitable<spool_result<void>> save_hold(std::string account,
                                                       std::optional<hold_row> hold) override;
  boost::asio::awaitable<spool_result<queue_change>> remove(std::vector<std::string> ids) override;

 private:
  spool_writer& writer_;
};

}  // namespace oauth_relay::relay
