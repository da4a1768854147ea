// Blocking test client over plain POSIX sockets with poll() deadlines.
#include "integration/support/smtp_client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace oauth_relay::test_support {

std::string client_reply::str() const {
  return std::to_string(code) + " " + (lines.empty() ? std::string() : lines.back());
}

smtp_client::smtp_client(std::uint16_t port, const std::string& host) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    length = sizeof *v6;
  } else {
    throw std::runtime_error("bad host " + host);
  }
  fd_ = ::socket(address.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), length) != 0) {
    const std::string error = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    throw std::runtime_error("connect " + host + ":" + std::to_string(port) + ": " + error);
  }
}

smtp_client::~smtp_client() {
  if (fd_ >= 0) ::close(fd_);
}

void smtp_client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
}

std::optional<std::string> smtp_client::read_line(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto newline = buffer_.find("\r\n");
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 2);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready <= 0) return std::nullopt;
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return std::nullopt;
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

client_reply smtp_client::read_reply(std::chrono::milliseconds timeout) {
  client_reply reply;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto line = read_line(deadline);
    if (!line || line->size() < 3) return client_reply{};
    reply.code = std::stoi(line->substr(0, 3));
    reply.lines.push_back(line->size() > 4 ? line->substr(4) : std::string());
    if (line->size() == 3 || (*line)[3] == ' ') return reply;
  }
}

client_reply smtp_client::command(std::string_view line) {
  send(std::string(line) + "\r\n");
  return read_reply();
}

bool smtp_client::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return true;
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

client_reply smtp_client::send_message(const std::string& from, const std::vector<std::string>& to,
                                       const std::string& stuffed_content) {
  auto greeting = read_reply();
  if (greeting.code != 220) return greeting;
  auto r = command("EHLO client.test");
  if (r.code != 250) return r;
  r = command("MAIL FROM:<" + from + ">");
  if (r.code != 250) return r;
  for (const auto& rcpt : to) {
    r = command("RCPT TO:<" + rcpt + ">");
    if (r.code != 250) return r;
  }
  r = command("DATA");
  if (r.code != 354) return r;
  send(stuffed_content);
  send(".\r\n");
  return read_reply();
}

std::string queued_id(const client_reply& reply) {
  const std::string marker = "queued as ";
  const std::string text = reply.lines.empty() ? std::string() : reply.lines.back();
  auto at = text.find(marker);
  return at == std::string::npos ? std::string() : text.substr(at + marker.size());
}

}  // namespace oauth_relay::test_support
