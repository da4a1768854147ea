// What the control socket (config `control_socket`, mode 0600, the service
// user and root only) answers: everything oauth-relayctl needs from a running
// daemon. The queue with its senders and recipients, changing it, and the
// token store are here and never on the health socket.
#pragma once

#include <array>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "daemon/http_socket.hpp"

namespace oauth_relay::auth {
class token_manager;
class token_store;
}  // namespace oauth_relay::auth
namespace oauth_relay::config {
struct settings;
}
namespace oauth_relay::relay {
class delivery_scheduler;
class spool;
}  // namespace oauth_relay::relay

namespace oauth_relay::daemon {

class control_routes {
 public:
  struct sources {
    relay::spool& spool;
    auth::token_manager& tokens;
    relay::delivery_scheduler& scheduler;
    // Used on `blocking` only; thread-safe.
    auth::token_store& store;
    boost::asio::any_io_executor blocking;
    // The running configuration (its accounts), replaced on reload.
    const config::settings& settings;
  };

  explicit control_routes(sources s) : sources_(s) {}

  boost::asio::awaitable<http_reply> respond(const http_request& request);

  // GET /queue[?limit=N&after=CURSOR] (a page: see parse_queue_page), POST
  // /queue/retry, POST /queue/delete: the queue. A GET's answer gets the
  // query string, a POST's its body.
  // POST /accounts/reload: re-read the token store now.
  // GET /accounts: the `oauth-relayctl accounts --json` document.
  // POST /accounts/import {"address", "refresh_token", optionally
  //   "access_token" and "access_expires_at" (unix seconds)}: stores a
  //   refresh token (oauth-relayctl authorize and import), then reloads.
  static const std::array<route<control_routes>, 6> table;

 private:
  boost::asio::awaitable<http_reply> queue(std::string_view body);
  boost::asio::awaitable<http_reply> retry(std::string_view body);
  boost::asio::awaitable<http_reply> remove(std::string_view body);
  boost::asio::awaitable<http_reply> reload(std::string_view body);
  boost::asio::awaitable<http_reply> accounts(std::string_view body);
  boost::asio::awaitable<http_reply> import(std::string_view body);
  // Reloads the token store and makes every usable account's mail due now;
  // returns how many accounts' stored tokens changed.
  boost::asio::awaitable<std::size_t> reload_accounts();

  sources sources_;
};

}  // namespace oauth_relay::daemon
