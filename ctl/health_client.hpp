// HTTP/1.1 over the daemon's health socket (config health_socket), with
// libcurl: the client side of the health-socket API used by oauth-relayctl.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace oauth_relay::ctl {

// Long enough for a loaded daemon, short enough for a monitoring check.
inline constexpr std::chrono::milliseconds default_health_timeout{10'000};

struct health_reply {
  long status = 0;
  std::string body;
  // The body as JSON; null when it is not JSON.
  nlohmann::json json() const;
};

class health_client {
 public:
  explicit health_client(std::filesystem::path socket,
                         std::chrono::milliseconds timeout = default_health_timeout);

  // Throw ctl::failure when the daemon cannot be reached: not running (no
  // socket, connection refused), permission denied, or no answer in time.
  health_reply get(std::string_view path) const;
  health_reply post(std::string_view path, const nlohmann::json& body) const;

  // POST without throwing, for best-effort notifications: `error` says why
  // when the result is not ok.
  enum class reach { ok, not_running, failed };
  reach try_post(std::string_view path, const nlohmann::json& body, health_reply& reply,
                 std::string& error) const;

  const std::filesystem::path& socket() const { return socket_; }

 private:
  health_reply request(const char* method, std::string_view path, const std::string* body) const;

  std::filesystem::path socket_;
  std::chrono::milliseconds timeout_;
};

// A reply the daemon sent with an error status: a failure naming the request
// and the daemon's {"error": ...} text.
[[noreturn]] void fail_with_reply(std::string_view request, const health_reply& reply);

}  // namespace oauth_relay::ctl
