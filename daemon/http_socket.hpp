// HTTP/1.1 on a Unix socket, the plumbing shared by the health socket and the
// control socket: binding, modes, the accept loop, limits and deadlines. What
// each socket answers is a route table of its own (health_routes, control_routes).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <set>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>

namespace oauth_relay::daemon {

// A slow or silent client gets this long for each request, from its first
// byte (or the end of the previous answer) to the end of the answer.
inline constexpr std::chrono::seconds http_request_deadline{5};
// Connections served at once per socket; more wait in the listen backlog
// until one ends (at most a deadline later), so a flood cannot take memory or
// the loop.
inline constexpr std::size_t http_max_connections = 16;
// Requests are small: a request line, a few headers, a list of queue ids or
// one refresh token.
inline constexpr std::uint32_t http_max_header_bytes = 8 * 1024;
inline constexpr std::uint64_t http_max_body_bytes = 64 * 1024;
// After refusing a request whose body was not read, the rest of it is taken
// in and dropped for at most this long and this much, so the client can read
// the refusal (RFC 9112 §9.6: close in stages, not with unread data).
inline constexpr std::chrono::seconds http_linger_time{1};
inline constexpr std::size_t http_linger_bytes = 1024 * 1024;

struct http_request {
  std::string method;
  std::string path;  // the target without its query string
  std::string body;
  std::string query;  // what followed '?' in the target, as sent
};

struct http_reply {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // for 405
};

// A route of a table owned by `Owner`: the member that answers METHOD PATH.
// Coroutines here take their request by reference or view (it outlives the
// answer): GCC 12 miscompiles some by-value class arguments of coroutines,
// copying them into the frame bytewise, and the copy's destructor frees what
// it never owned.
template <typename Owner>
struct route {
  std::string_view method;
  std::string_view path;
  boost::asio::awaitable<http_reply> (Owner::*answer)(std::string_view body);
};

// 404 {"error":"not found"}; 405 {"error":"method not allowed"} with Allow.
http_reply not_found();
http_reply method_not_allowed(std::string allow);

// The route of `table` for METHOD PATH, or nullptr with `refusal` set: 404
// when no route has the path, 405 naming the allowed methods when only
// another method does.
template <typename Owner>
const route<Owner>* find_route(std::span<const route<Owner>> table, std::string_view method,
                               std::string_view path, http_reply& refusal) {
  std::string allow;
  for (const auto& r : table) {
    if (r.path != path) continue;
    if (r.method == method) return &r;
    allow += (allow.empty() ? "" : ", ") + std::string(r.method);
  }
  refusal = allow.empty() ? not_found() : method_not_allowed(std::move(allow));
  return nullptr;
}

struct http_socket_options {
  std::string key;  // the config key naming the socket: in errors and log events
  std::filesystem::path path;
  // The socket file's mode. Its group is its directory's when that is
  // set-group-ID (the package's /run/oauth-relay: oauth-relay-monitor),
  // otherwise the daemon's: bind() decides, as chown(2) is not in the
  // unit's system calls.
  mode_t mode = 0600;
  // Only root and the daemon's own user are served (SO_PEERCRED); anyone
  // else gets 403 to every request, whatever the file's mode.
  bool owner_only = false;
};

class http_socket {
 public:
  // Called with a request that lives until the answer is written.
  using handler = std::function<boost::asio::awaitable<http_reply>(const http_request&)>;

  http_socket(boost::asio::io_context& io, http_socket_options options, handler answer);
  ~http_socket();
  http_socket(const http_socket&) = delete;
  http_socket& operator=(const http_socket&) = delete;

  // Creates the socket's directory if missing (0755: the socket's own mode
  // decides who connects), replaces a stale socket file (one nobody answers
  // on), binds, sets the mode and serves; the log names the mode and group.
  // Throws std::system_error naming the key and the path.
  void start();
  // Stops accepting, closes open connections and removes the socket file if
  // it is still the one this process created.
  void stop();

  const std::filesystem::path& path() const { return options_.path; }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::local::stream_protocol::socket socket);
  void log_listening() const;
  // Whether the peer may be served (always, unless owner_only).
  bool peer_allowed(boost::asio::local::stream_protocol::socket& socket) const;

  boost::asio::io_context& io_;
  http_socket_options options_;
  handler answer_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::set<boost::asio::local::stream_protocol::socket*> connections_;
  boost::asio::steady_timer slot_timer_;  // cancelled when a connection ends
  bool listening_ = false;
  bool stopping_ = false;
  dev_t socket_dev_ = 0;
  ino_t socket_ino_ = 0;
};

}  // namespace oauth_relay::daemon
