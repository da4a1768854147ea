// The one idiom for timeouts: an I/O object has a deadline; arming it is
// cheap (a time point is set, no timer operation unless it moves sooner); when
// it passes, the object's pending operations are cancelled (the action given
// at construction) and expired() tells the code that sees operation_aborted
// why. Used by the SMTP sessions, the upstream client and the health socket.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

namespace oauth_relay {

class deadline {
 public:
  using clock = std::chrono::steady_clock;

  // `on_expiry` runs on `executor` when an armed deadline passes; it usually
  // cancels a socket. It is never called after the deadline is destroyed.
  deadline(boost::asio::any_io_executor executor, std::function<void()> on_expiry);
  ~deadline();
  deadline(const deadline&) = delete;
  deadline& operator=(const deadline&) = delete;

  // From now on, the guarded operations must be done within `timeout`.
  // Clears expired().
  void arm(clock::duration timeout);
  void arm_at(clock::time_point when);
  // No deadline until the next arm(); nothing stays pending on the executor.
  void disarm();
  // The last armed deadline passed (and on_expiry ran) since it was armed.
  bool expired() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace oauth_relay
