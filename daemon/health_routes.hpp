// What the health socket (config `health_socket`, mode 0660, the monitoring
// group) answers: GET /health and GET /metrics, nothing else. It reads and
// changes nothing, and names no queued message's sender or recipients.
#pragma once

#include <array>
#include <chrono>
#include <string>

#include <boost/asio/awaitable.hpp>

#include "daemon/health_report.hpp"
#include "daemon/http_socket.hpp"

namespace oauth_relay::relay {
class delivery_scheduler;
class smtp_server;
class spool;
}  // namespace oauth_relay::relay

namespace oauth_relay::daemon {

class health_routes {
 public:
  struct sources {
    relay::spool& spool;
    auth::token_manager& tokens;
    relay::delivery_scheduler& scheduler;
    const relay::smtp_server& smtp;
  };

  // Starts collecting delivery durations for the histogram of /metrics.
  health_routes(sources s, std::string version);
  ~health_routes();
  health_routes(const health_routes&) = delete;
  health_routes& operator=(const health_routes&) = delete;

  boost::asio::awaitable<http_reply> respond(const http_request& request);

  static const std::array<route<health_routes>, 2> table;

 private:
  boost::asio::awaitable<http_reply> health(std::string_view body);
  boost::asio::awaitable<http_reply> metrics(std::string_view body);
  health_input gather(const relay::spool_result<relay::queue_summary>& queue) const;

  sources sources_;
  std::string version_;
  std::chrono::steady_clock::time_point started_;
  histogram durations_;
};

}  // namespace oauth_relay::daemon
