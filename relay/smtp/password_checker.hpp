// Password checks for SMTP AUTH off the event loop: crypt_r(3) takes tens of
// milliseconds of CPU on purpose, so each check runs on a thread of its own,
// at a lower CPU priority, and its answer is posted back to the session.
#pragma once

#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>

#include "relay/smtp/auth_exchange.hpp"
#include "relay/smtp/logins.hpp"

namespace oauth_relay::relay {

// Checks running at once: one core at most for hashing (about 16 ms of CPU
// each, bench/identity), so on a 2-core host the event loop always has the
// other, and the daemon's blocking pool keeps every thread for token
// refreshes and WAL checkpoints however many clients log in (or guess).
inline constexpr int password_check_threads = 1;

// The hashing thread's nice value (setpriority(2) on the thread alone): when
// clients authenticate in a loop, the scheduler lets the event loop and the
// spool's writer run first, so mail already being accepted keeps its pace
// and a flood of logins slows only the logins.
inline constexpr int password_check_nice = 10;

class password_checker {
 public:
  // `loop` runs the sessions.
  explicit password_checker(boost::asio::any_io_executor loop);
  ~password_checker();
  password_checker(const password_checker&) = delete;
  password_checker& operator=(const password_checker&) = delete;

  // Whether `given` names a login of `table` with its password. The
  // credentials are wiped on the hashing thread once checked.
  boost::asio::awaitable<bool> check(std::shared_ptr<const login_table> table, credentials given);

 private:
  boost::asio::any_io_executor loop_;
  boost::asio::thread_pool hashing_{password_check_threads};
};

}  // namespace oauth_relay::relay
