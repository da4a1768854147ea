// One timer per deadline, re-armed only when the deadline moves sooner or
// when it fires early (the deadline was moved later meanwhile).
#include "common/deadline.hpp"

#include <boost/asio/steady_timer.hpp>

namespace oauth_relay {

struct deadline::state : std::enable_shared_from_this<deadline::state> {
  state(boost::asio::any_io_executor executor, std::function<void()> action)
      : timer(std::move(executor)), on_expiry(std::move(action)) {}

  boost::asio::steady_timer timer;
  std::function<void()> on_expiry;
  clock::time_point due = clock::time_point::max();
  bool waiting = false;  // an async_wait is pending, for timer.expiry()
  bool expired = false;
  bool closed = false;

  void watch() {
    if (waiting && timer.expiry() <= due) return;  // it will wake in time
    // Moving it sooner: the pending wait ends with operation_aborted and the
    // new one takes over.
    timer.expires_at(due);
    waiting = true;
    timer.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (self->closed) return;
      if (ec) {
        // Replaced by a sooner wait (which is pending), or cancelled by disarm().
        return;
      }
      self->waiting = false;
      if (self->due == clock::time_point::max()) return;
      if (clock::now() < self->due) {
        self->watch();  // the deadline moved later while this wait was pending
        return;
      }
      self->expired = true;
      self->due = clock::time_point::max();
      self->on_expiry();
    });
  }
};

deadline::deadline(boost::asio::any_io_executor executor, std::function<void()> on_expiry)
    : state_(std::make_shared<state>(std::move(executor), std::move(on_expiry))) {}

deadline::~deadline() {
  state_->closed = true;
  state_->timer.cancel();
}

void deadline::arm(clock::duration timeout) {
  arm_at(clock::now() + timeout);
}

void deadline::arm_at(clock::time_point when) {
  state_->expired = false;
  state_->due = when;
  state_->watch();
}

void deadline::disarm() {
  state_->due = clock::time_point::max();
  // A pending wait would keep the event loop's run() going until it fires.
  if (state_->waiting) {
    state_->waiting = false;
    state_->timer.cancel();
  }
}

bool deadline::expired() const {
  return state_->expired;
}

}  // namespace oauth_relay
