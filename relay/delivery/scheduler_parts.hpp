// What the delivery scheduler's source files share: the per-account queue of
// claimed messages, and small helpers. Not for use outside the scheduler.
#pragma once

#include <deque>
#include <exception>
#include <set>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/log.hpp"
#include "relay/delivery/decision.hpp"
#include "relay/delivery/scheduler.hpp"
#include "relay/delivery/sending_limits.hpp"
#include "relay/delivery/waiting_mail.hpp"

namespace oauth_relay::relay {

namespace asio = boost::asio;

struct delivery_scheduler::account_queue {
  explicit account_queue(asio::any_io_executor ex, std::string a)
      : account(std::move(a)), executor(std::move(ex)) {}
  std::string account;
  waiting_mail waiting;
  std::size_t workers = 0;
  std::size_t idle_workers = 0;
  asio::any_io_executor executor;
  // Each idle worker waits on its own timer (a shared one would wake them all
  // whenever one re-arms it); cancelled when work comes.
  std::set<asio::steady_timer*> idle_timers;
  void wake_idle() {
    for (auto* t : idle_timers) t->cancel();
  }
};

// Completion of a spawned coroutine: an escaped exception is a bug, logged once.
inline auto log_failure(const char* event) {
  return [event](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error(event).kv("error", ex.what());
    }
  };
}

// An account's hold backs off by the queue's retry settings.
inline hold_policy hold_policy_of(const delivery_policy& p) {
  return hold_policy{p.retry_initial, p.retry_max};
}

// Account addresses are compared without case, as Google does.
inline std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

}  // namespace oauth_relay::relay
