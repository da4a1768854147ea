// Password checks for SMTP AUTH off the event loop: crypt_r(3) takes tens of
// milliseconds of CPU on purpose, so each check runs on the daemon's blocking
// pool and its answer is posted back to the session's coroutine.
#pragma once

#include <array>
#include <cstddef>
#include <memory>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/strand.hpp>

#include "relay/smtp/auth_exchange.hpp"
#include "relay/smtp/logins.hpp"

namespace oauth_relay::relay {

// Checks running at once: one core at most for hashing (about 16 ms of CPU
// each, bench/identity), so on a 2-core host the event loop always has the
// other, and the blocking pool keeps threads for token refreshes and WAL
// checkpoints however many clients log in (or guess) at once.
inline constexpr std::size_t max_concurrent_password_checks = 1;

class password_checker {
 public:
  // `loop` runs the sessions; `blocking` is the daemon's pool.
  password_checker(boost::asio::any_io_executor loop, boost::asio::any_io_executor blocking);

  // Whether `given` names a login of `table` with its password. The
  // credentials are wiped on the pool once checked.
  boost::asio::awaitable<bool> check(std::shared_ptr<const login_table> table, credentials given);

 private:
  using lane = boost::asio::strand<boost::asio::any_io_executor>;
  boost::asio::any_io_executor loop_;
  // Each strand runs one check at a time; sessions take them in turn.
  std::array<lane, max_concurrent_password_checks> lanes_;
  std::size_t next_lane_ = 0;
};

}  // namespace oauth_relay::relay
