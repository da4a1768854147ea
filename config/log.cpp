// One log line per event on standard error, written with a single write(2) so
// lines from different threads never interleave.
#include "config/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/text.hpp"

namespace oauth_relay::log {
namespace {

std::atomic<int> threshold{static_cast<int>(level::info)};

// Quoted only when a reader could not tell where the value ends otherwise
// or when it holds something that must be escaped to stay on the line.
bool needs_quotes(std::string_view value) {
  if (value.empty()) return true;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

// The same escaping as the config's error messages (common/text.hpp), so a
// value reads the same in both.
void append_value(std::string& out, std::string_view value) {
  if (!needs_quotes(value)) {
    out += value;
    return;
  }
  out += '"';
  out += escaped(value, "\"\\");
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
