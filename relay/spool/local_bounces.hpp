// Bounces and delay warnings to a local sender (root@localhost, as cron
// sends) go to that sender's aliases, as a message to root would. A
// delivery_queue in front of the spool's: the scheduler's reports pass
// through it on their way to be stored, everything else is forwarded.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "relay/envelope.hpp"
#include "relay/smtp/local_addresses.hpp"
#include "relay/spool/delivery_queue.hpp"

namespace oauth_relay::relay {

// The recipients of a generated message with each local one replaced by
// its aliases (each address once). `unknown` gets the local addresses no
// alias maps: they are left out.
std::vector<recipient> expand_local_recipients(const local_addresses& local,
                                               const std::vector<recipient>& recipients,
                                               std::vector<std::string>& unknown);

class local_bounces final : public delivery_queue {
 public:
  explicit local_bounces(delivery_queue& spool) : spool_(spool) {}
  // The table of the running configuration (nothing: no rewriting).
  void use(std::shared_ptr<const local_addresses> local) { local_ = std::move(local); }

  boost::asio::awaitable<spool_result<due_mail>> due(due_request request) override {
    return spool_.due(std::move(request));
  }
  boost::asio::awaitable<spool_result<std::optional<std::int64_t>>> next_due() override {
    return spool_.next_due();
  }
  boost::asio::awaitable<spool_result<message_content>> content(std::string id) override {
    return spool_.content(std::move(id));
  }
  boost::asio::awaitable<spool_result<void>> record(
      delivery_record record, std::optional<generated_message> bounce) override;
  boost::asio::awaitable<spool_result<std::size_t>> postpone(std::string account,
                                                             std::int64_t until_ms,
                                                             parking_limits limits,
                                                             std::string reason) override {
    return spool_.postpone(std::move(account), until_ms, limits, std::move(reason));
  }
  boost::asio::awaitable<spool_result<std::size_t>> reschedule(std::string account,
                                                               std::int64_t when_ms) override {
    return spool_.reschedule(std::move(account), when_ms);
  }
  boost::asio::awaitable<spool_result<sending_record>> sending_history(
      std::int64_t since_ms) override {
    return spool_.sending_history(since_ms);
  }
  boost::asio::awaitable<spool_result<void>> save_hold(std::string account,
                                                       std::optional<hold_row> hold) override {
    return spool_.save_hold(std::move(account), std::move(hold));
  }
  boost::asio::awaitable<spool_result<queue_change>> remove(std::vector<std::string> ids) override {
    return spool_.remove(std::move(ids));
  }

 private:
  delivery_queue& spool_;
  std::shared_ptr<const local_addresses> local_;
};

}  // namespace oauth_relay::relay
