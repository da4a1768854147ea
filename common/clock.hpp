// Wall-clock time as the spool, the token store and the logs keep it: unix
// seconds and milliseconds. Pure code takes `now` as an argument instead.
#pragma once

#include <chrono>
#include <cstdint>

namespace oauth_relay {

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

inline std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace oauth_relay
