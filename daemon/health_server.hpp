// The health socket: HTTP/1.1 on a Unix socket (config `health_socket`, mode
// 0660) for monitoring and oauth-relayctl: health, metrics, the queue, and
// the administrator's retry, delete and token reload.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

#include "daemon/health_report.hpp"

namespace oauth_relay::relay {
class delivery_scheduler;
class smtp_server;
class spool;
}  // namespace oauth_relay::relay

namespace oauth_relay::daemon {

// A slow or silent client gets this long for each request, from its first
// byte (or the end of the previous answer) to the end of the answer.
inline constexpr std::chrono::seconds health_request_deadline{5};
// Connections served at once; more wait in the listen backlog until one ends
// (at most a deadline later), so a flood cannot take memory or the loop.
inline constexpr std::size_t health_max_connections = 16;
// Requests are tiny: a request line, a few headers, a list of queue ids.
inline constexpr std::uint32_t health_max_header_bytes = 8 * 1024;
inline constexpr std::uint64_t health_max_body_bytes = 64 * 1024;
// After refusing a request whose body was not read, the rest of it is taken
// in and dropped for at most this long and this much, so the client can read
// the refusal (RFC 9112 §9.6: close in stages, not with unread data).
inline constexpr std::chrono::seconds health_linger_time{1};
inline constexpr std::size_t health_linger_bytes = 1024 * 1024;

class health_server {
 public:
  struct sources {
    relay::spool& spool;
    auth::token_manager& tokens;
    relay::delivery_scheduler& scheduler;
    const relay::smtp_server& smtp;
  };

  health_server(boost::asio::io_context& io, std::filesystem::path socket_path, sources s,
                std::string version);
  ~health_server();
  health_server(const health_server&) = delete;
  health_server& operator=(const health_server&) = delete;

  // Creates the socket's directory if missing (0750), replaces a stale socket
  // file (one nobody answers on), binds, sets mode 0660 and serves. Throws
  // std::system_error naming the path.
  void start();
  // Stops accepting, closes open connections and removes the socket file if
  // it is still the one this process created.
  void stop();

  const std::filesystem::path& path() const { return path_; }

 private:
  struct reply {
    unsigned status = 200;
    std::string content_type = "application/json";
    std::string body;
    std::string allow;  // for 405
  };

  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::local::stream_protocol::socket socket);
  boost::asio::awaitable<reply> respond(std::string method, std::string target, std::string body);
  boost::asio::awaitable<reply> health();
  boost::asio::awaitable<reply> metrics();
  boost::asio::awaitable<reply> queue();
  boost::asio::awaitable<reply> retry(std::string body);
  boost::asio::awaitable<reply> remove(std::string body);
  boost::asio::awaitable<reply> reload();
  health_input gather(const relay::spool_result<relay::queue_summary>& queue) const;

  boost::asio::io_context& io_;
  std::filesystem::path path_;
  sources sources_;
  std::string version_;
  std::chrono::steady_clock::time_point started_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::set<boost::asio::local::stream_protocol::socket*> connections_;
  boost::asio::steady_timer slot_timer_;  // cancelled when a connection ends
  histogram durations_;
  bool listening_ = false;
  bool stopping_ = false;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
};

}  // namespace oauth_relay::daemon
