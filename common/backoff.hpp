// Retry delays: the same doubling rule for delivery and token refreshes.
#pragma once

#include <algorithm>
#include <chrono>

namespace oauth_relay {

// The wait after the `failures`-th failure in a row (1 for the first):
// `initial`, doubled for each further failure, never more than `max`.
// A count of 0 or less is treated as 1.
inline std::chrono::milliseconds backoff(std::chrono::milliseconds initial,
                                         std::chrono::milliseconds max, int failures) {
  auto delay = initial;
  for (int i = 1; i < failures && delay < max; ++i) delay *= 2;
  return std::min(delay, max);
}

}  // namespace oauth_relay
