// HTTP/1.1 over one of the daemon's Unix sockets, with libcurl: the health
// socket (config health_socket: status) and the control socket (config
// control_socket: the queue, the accounts, token imports and reloads).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace oauth_relay::ctl {

struct context;

// Long enough for a loaded daemon, short enough for a monitoring check.
inline constexpr std::chrono::milliseconds default_daemon_timeout{10'000};

struct daemon_reply {
  long status = 0;
  std::string body;
  // The body as JSON; null when it is not JSON.
  nlohmann::json json() const;
};

class daemon_client {
 public:
  // `who_may` is the hint when the socket refuses this user (EACCES).
  daemon_client(std::filesystem::path socket, std::string who_may,
                std::chrono::milliseconds timeout = default_daemon_timeout);

  // Throw ctl::failure when the daemon cannot be reached: not running (no
  // socket, connection refused), permission denied, or no answer in time.
  daemon_reply get(std::string_view path) const;
  daemon_reply post(std::string_view path, const nlohmann::json& body) const;

  // Whether a daemon accepts connections on the socket (it connects and
  // hangs up). False when there is no socket or nobody answers; throws
  // ctl::failure when the socket refuses this user.
  bool running() const;

  const std::filesystem::path& socket() const { return socket_; }

 private:
  daemon_reply request(const char* method, std::string_view path, const std::string* body) const;
  [[noreturn]] void permission_denied() const;

  std::filesystem::path socket_;
  std::string who_may_;
  std::chrono::milliseconds timeout_;
};

// The health socket: GET /health and /metrics, for root and the monitoring group.
daemon_client health_socket_client(const context& ctx);
// The control socket: everything else, for root and the daemon's own user.
daemon_client control_socket_client(const context& ctx);

// A reply the daemon sent with an error status: a failure naming the request
// and the daemon's {"error": ...} text.
[[noreturn]] void fail_with_reply(std::string_view request, const daemon_reply& reply);

}  // namespace oauth_relay::ctl
