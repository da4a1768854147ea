// One thread, one connection at a time: oauth-relayctl sends one request per run.
#include "integration/support/fake_daemon_socket.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <stdexcept>

namespace oauth_relay::test_support {
namespace {

std::string reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

std::string header_value(const std::string& head, const std::string& name) {
  std::string lowered = head;
  for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto at = lowered.find("\n" + name + ":");
  if (at == std::string::npos) return {};
  auto start = at + name.size() + 2;
  while (start < head.size() && head[start] == ' ') ++start;
  const auto end = head.find_first_of("\r\n", start);
  return head.substr(start, end - start);
}

}  // namespace

fake_daemon_socket::fake_daemon_socket(std::filesystem::path socket) : socket_(std::move(socket)) {
  listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string path = socket_.string();
  if (path.size() >= sizeof address.sun_path) throw std::runtime_error("socket path too long");
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());
  if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(listener_, 8) != 0) {
    throw std::runtime_error("cannot listen on " + path + ": " + std::strerror(errno));
  }
  ::chmod(path.c_str(), 0660);
  if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  thread_ = std::thread([this] { serve(); });
}

fake_daemon_socket::~fake_daemon_socket() {
  const char byte = 'x';
  [[maybe_unused]] const auto n = ::write(stop_pipe_[1], &byte, 1);
  thread_.join();
  ::close(listener_);
  ::close(stop_pipe_[0]);
  ::close(stop_pipe_[1]);
  ::unlink(socket_.c_str());
}

void fake_daemon_socket::answer(const std::string& method, const std::string& target, int status,
                                std::string json_body) {
  std::lock_guard lock(mutex_);
  answers_[{method, target}] = {status, std::move(json_body)};
}

std::vector<fake_daemon_socket::request> fake_daemon_socket::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

void fake_daemon_socket::serve() {
  for (;;) {
    pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_pipe_[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    handle(fd);
    ::close(fd);
  }
}

void fake_daemon_socket::handle(int fd) {
  timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  std::string data;
  char buffer[4096];
  std::size_t head_end = std::string::npos;
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return;
    data.append(buffer, static_cast<std::size_t>(n));
  }
  const std::string head = data.substr(0, head_end + 2);
  const std::string length_text = header_value(head, "content-length");
  const std::size_t length = length_text.empty() ? 0 : std::stoul(length_text);
  std::string body = data.substr(head_end + 4);
  while (body.size() < length) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) return;
    body.append(buffer, static_cast<std::size_t>(n));
  }
  request r;
  const auto first_space = head.find(' ');
  const auto second_space = head.find(' ', first_space + 1);
  r.method = head.substr(0, first_space);
  r.target = head.substr(first_space + 1, second_space - first_space - 1);
  r.content_type = header_value(head, "content-type");
  r.body = body;

  int status = 404;
  std::string answer_body = "{\"error\":\"not found\"}";
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(r);
    if (auto it = answers_.find({r.method, r.target}); it != answers_.end()) {
      status = it->second.first;
      answer_body = it->second.second;
    }
  }
  const std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) +
                               "\r\nContent-Type: application/json\r\nContent-Length: " +
                               std::to_string(answer_body.size()) +
                               "\r\nConnection: close\r\n\r\n" + answer_body;
  std::string_view rest = response;
  while (!rest.empty()) {
    const ssize_t n = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace oauth_relay::test_support
