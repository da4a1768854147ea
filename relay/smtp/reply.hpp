// An SMTP reply as a value: code, enhanced status (RFC 3463) and text, and how
// it is written on the wire (multi-line replies use "250-" continuations).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace oauth_relay::smtp {

struct reply {
  int code = 0;          // 250, 354, 451, ...
  std::string enhanced;  // "2.1.0"; empty for replies without one (220, 221 greeting, 354)
  std::vector<std::string> lines;  // at least one; each without CRLF

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }

  // Appends the wire form, e.g. "250-first\r\n250 2.0.0 last\r\n". The enhanced
  // code is written on every line (RFC 2034 §4).
  void append_to(std::string& out) const;
  std::string wire() const;
};

reply make_reply(int code, std::string_view enhanced, std::string_view text);

// The reply on one printable line for logs, error messages and the queue's
// last_reply: "550 5.1.1 first / second" (continuation lines joined with
// " / "), control characters as spaces, cut like common one_line().
std::string to_line(const reply& r);

}  // namespace oauth_relay::smtp
