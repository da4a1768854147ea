// One log line per event, `key=value` pairs after a journald priority prefix
// (<3> error ... <7> debug) on standard error.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace oauth_relay::log {

enum class level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// Messages below this level are dropped (default: info).
void set_threshold(level);
bool enabled(level);

// Builds one line and writes it with a single write(2) when destroyed:
//   log::line(level::info, "session_start").kv("session", id).kv("client", ip);
// Values with spaces, quotes or '=' are quoted. Secrets must never be passed in.
class line {
 public:
  line(level, std::string_view event);
  line(const line&) = delete;
  line& operator=(const line&) = delete;
  ~line();
  line& kv(std::string_view key, std::string_view value);
  line& kv(std::string_view key, const char* value) { return kv(key, std::string_view(value)); }
  line& kv(std::string_view key, const std::string& value) {
    return kv(key, std::string_view(value));
  }
  template <typename Integer>
  requires std::is_integral_v<Integer> line& kv(std::string_view key, Integer value) {
    return kv_number(key, std::to_string(value));
  }

 private:
  line& kv_number(std::string_view key, const std::string& digits);
  bool enabled_;
  std::string text_;
};

inline line error(std::string_view event) {
  return line(level::error, event);
}
inline line warning(std::string_view event) {
  return line(level::warning, event);
}
inline line notice(std::string_view event) {
  return line(level::notice, event);
}
inline line info(std::string_view event) {
  return line(level::info, event);
}
inline line debug(std::string_view event) {
  return line(level::debug, event);
}

}  // namespace oauth_relay::log
