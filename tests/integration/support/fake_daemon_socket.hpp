// A stand-in for one of oauth-relayd's sockets (health or control): HTTP/1.1
// on a Unix socket answering canned JSON per method and path, recording
// every request. Lets oauth-relayctl's clients be tested without the daemon.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace oauth_relay::test_support {

class fake_daemon_socket {
 public:
  struct request {
    std::string method;
    std::string target;
    std::string content_type;
    std::string body;
  };

  // Listens on `socket` (mode 0660) from its own thread.
  explicit fake_daemon_socket(std::filesystem::path socket);
  ~fake_daemon_socket();
  fake_daemon_socket(const fake_daemon_socket&) = delete;
  fake_daemon_socket& operator=(const fake_daemon_socket&) = delete;

  // What METHOD TARGET is answered with. Unset routes get the contract's 404
  // {"error":"not found"}.
  void answer(const std::string& method, const std::string& target, int status,
              std::string json_body);

  std::vector<request> requests() const;
  const std::filesystem::path& socket() const { return socket_; }

 private:
  void serve();
  void handle(int fd);

  std::filesystem::path socket_;
  int listener_ = -1;
  int stop_pipe_[2] = {-1, -1};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::pair<int, std::string>> answers_;
  std::vector<request> requests_;
};

}  // namespace oauth_relay::test_support
