// One log line per event on standard error, written with a single write(2) so
// lines from different threads never interleave.
#include "config/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace oauth_relay::log {
namespace {

std::atomic<int> threshold{static_cast<int>(level::info)};

bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20)
      return true;
  }
  return false;
}

void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out += value;
    return;
  }
  out += '"';
  for (char c : value) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\x";
          out += hex[(c >> 4) & 0xf];
          out += hex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

}  // namespace

void set_threshold(level l) {
  threshold.store(static_cast<int>(l));
}
bool enabled(level l) {
  return static_cast<int>(l) <= threshold.load(std::memory_order_relaxed);
}

line::line(level l, std::string_view event) : enabled_(enabled(l)) {
  if (!enabled_) return;
  text_.reserve(160);
  text_ += '<';
  text_ += static_cast<char>('0' + static_cast<int>(l));
  text_ += '>';
  text_ += "event=";
  text_ += event;
}

line::~line() {
  if (!enabled_) return;
  text_ += '\n';
  const char* p = text_.data();
  std::size_t left = text_.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a failing log
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

line& line::kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  text_ += ' ';
  text_ += key;
  text_ += '=';
  append_value(text_, value);
  return *this;
}

line& line::kv_number(std::string_view key, const std::string& digits) {
  if (!enabled_) return *this;
  text_ += ' ';
  text_ += key;
  text_ += '=';
  text_ += digits;
  return *this;
}

}  // namespace oauth_relay::log
