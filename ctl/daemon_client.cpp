// libcurl over a Unix socket (CURLOPT_UNIX_SOCKET_PATH), one easy handle per
// request; the host in the URL is only for the Host header.
#include "ctl/daemon_client.hpp"

#include <curl/curl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

#include "auth/curl_setup.hpp"
#include "ctl/common.hpp"

namespace oauth_relay::ctl {
namespace {

// The queue listing of a large spool stays well below this.
constexpr std::size_t max_body = 64 * 1024 * 1024;

struct easy_free {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct slist_free {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (body->size() + n > max_body) return 0;
  body->append(data, n);
  return n;
}

}  // namespace

nlohmann::json daemon_reply::json() const {
  return nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
}

daemon_client::daemon_client(std::filesystem::path socket, std::string who_may,
                             std::chrono::milliseconds timeout)
    : socket_(std::move(socket)), who_may_(std::move(who_may)), timeout_(timeout) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

daemon_reply daemon_client::request(const char* method, std::string_view path,
                                    const std::string* body) const {
  std::unique_ptr<CURL, easy_free> curl(curl_easy_init());
  if (!curl) throw failure("cannot create a libcurl handle", "the system is out of memory");
  CURL* c = curl.get();
  const std::string url = "http://localhost" + std::string(path);
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::unique_ptr<curl_slist, slist_free> headers(
      curl_slist_append(nullptr, "Accept: application/json"));
  if (body) headers.reset(curl_slist_append(headers.release(), "Content-Type: application/json"));
  daemon_reply reply;

  try {
    OAUTH_RELAY_SETOPT(c, CURLOPT_URL, url.c_str());
    OAUTH_RELAY_SETOPT(c, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
    OAUTH_RELAY_SETOPT(c, CURLOPT_PROTOCOLS_STR, "http");
    OAUTH_RELAY_SETOPT(c, CURLOPT_PROXY, "");  // never an http_proxy from the environment
    OAUTH_RELAY_SETOPT(c, CURLOPT_NOSIGNAL, 1L);
    OAUTH_RELAY_SETOPT(c, CURLOPT_ERRORBUFFER, error_buffer);
    OAUTH_RELAY_SETOPT(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    OAUTH_RELAY_SETOPT(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
      OAUTH_RELAY_SETOPT(c, CURLOPT_POSTFIELDS, body->c_str());
      OAUTH_RELAY_SETOPT(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    OAUTH_RELAY_SETOPT(c, CURLOPT_HTTPHEADER, headers.get());
    OAUTH_RELAY_SETOPT(c, CURLOPT_USERAGENT, "oauth-relayctl");
    OAUTH_RELAY_SETOPT(c, CURLOPT_WRITEFUNCTION, collect);
    OAUTH_RELAY_SETOPT(c, CURLOPT_WRITEDATA, &reply.body);
  } catch (const auth::curl_setup_error& e) {
    throw failure(e.what(), "install Debian 12's libcurl4 (7.88) or newer");
  }

  const CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
  }
  long os_errno = 0;
  curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
  const std::string where = socket_.string();
  if (rc == CURLE_COULDNT_CONNECT && (os_errno == EACCES || os_errno == EPERM)) {
    permission_denied();
  }
  if (rc == CURLE_COULDNT_CONNECT) {
    throw failure("oauth-relayd is not running (cannot connect to " + where + ")",
                  "start it: systemctl start oauth-relay");
  }
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    throw failure("oauth-relayd did not answer on " + where + " within " +
                      format_duration(timeout_.count() / 1000),
                  "it may be hung: systemctl status oauth-relay; journalctl -u oauth-relay");
  }
  throw failure("the request to oauth-relayd on " + where + " failed: " +
                    (error_buffer[0] != '\0' ? std::string(error_buffer) : curl_easy_strerror(rc)),
                "systemctl status oauth-relay; journalctl -u oauth-relay");
}

daemon_reply daemon_client::get(std::string_view path) const {
  return request("GET", path, nullptr);
}

daemon_reply daemon_client::post(std::string_view path, const nlohmann::json& body) const {
  const std::string text = body.dump();
  return request("POST", path, &text);
}

bool daemon_client::running() const {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string path = socket_.string();
  if (path.size() >= sizeof address.sun_path) {
    ::close(fd);
    return false;
  }
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  const int error = errno;
  ::close(fd);
  if (rc == 0) return true;
  if (error == EACCES || error == EPERM) permission_denied();
  return false;  // no socket, nobody listening: not running
}

void daemon_client::permission_denied() const {
  throw failure("permission denied on " + socket_.string(), who_may_);
}

daemon_client health_socket_client(const context& ctx) {
  return daemon_client(ctx.settings.health_socket,
                       "run oauth-relayctl as root or as a member of the health socket's group "
                       "(oauth-relay-monitor with the package: adduser USER oauth-relay-monitor)");
}

daemon_client control_socket_client(const context& ctx) {
  return daemon_client(ctx.settings.control_socket,
                       "the control socket is for root and the user oauth-relayd runs as: run "
                       "oauth-relayctl as root (sudo) or as that user");
}

void fail_with_reply(std::string_view request, const daemon_reply& reply) {
  const auto json = reply.json();
  std::string said;
  if (json.is_object() && json.contains("error") && json["error"].is_string()) {
    said = json["error"].get<std::string>();
  }
  std::string cause = "oauth-relayd answered " + std::string(request) + " with HTTP " +
                      std::to_string(reply.status);
  if (!said.empty()) cause += ": " + said;
  if (reply.status == 404 || reply.status == 405) {
    throw failure(cause,
                  "oauth-relayd and oauth-relayctl must be the same version: oauth-relayd "
                  "--version; oauth-relayctl --version");
  }
  throw failure(cause, "journalctl -u oauth-relay shows what the daemon logged about it");
}

}  // namespace oauth_relay::ctl
