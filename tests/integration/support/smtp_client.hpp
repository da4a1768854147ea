// A small blocking SMTP client for tests: exact bytes out, parsed replies in,
// every wait bounded.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oauth_relay::test_support {

struct client_reply {
  int code = 0;                    // 0 when the connection closed or timed out first
  std::vector<std::string> lines;  // text after "NNN-"/"NNN "
  std::string first() const { return lines.empty() ? std::string() : lines.front(); }
  // "250 2.0.0 Ok" style: code and the last line, for compact assertions.
  std::string str() const;
};

class smtp_client {
 public:
  smtp_client(std::uint16_t port, const std::string& host = "127.0.0.1");
  ~smtp_client();
  smtp_client(const smtp_client&) = delete;
  smtp_client& operator=(const smtp_client&) = delete;

  void send(std::string_view bytes);
  client_reply read_reply(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  client_reply command(std::string_view line);  // line without CRLF
  // True when the server closes the connection within `timeout` (reading and
  // discarding anything it still sends).
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Greeting, EHLO, MAIL, RCPT..., DATA, content (already dot-stuffed, without
  // the final ".\r\n"), and returns the reply to the end of data.
  client_reply send_message(const std::string& from, const std::vector<std::string>& to,
                            const std::string& stuffed_content);
  bool connected() const { return fd_ >= 0; }

 private:
  std::optional<std::string> read_line(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buffer_;
};

// Extracts the queue id from "250 2.0.0 Ok: queued as ID".
std::string queued_id(const client_reply& reply);

}  // namespace oauth_relay::test_support
