// A check runs on one of the strands over the blocking pool
// (common/offload.hpp); the session's coroutine resumes on the loop.
#include "relay/smtp/password_checker.hpp"

#include "common/offload.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;

template <std::size_t... i>
std::array<asio::strand<asio::any_io_executor>, sizeof...(i)> make_lanes(
    const asio::any_io_executor& pool, std::index_sequence<i...>) {
  return {((void)i, asio::make_strand(pool))...};
}

}  // namespace

password_checker::password_checker(asio::any_io_executor loop, asio::any_io_executor blocking)
    : loop_(std::move(loop)),
      lanes_(make_lanes(blocking, std::make_index_sequence<max_concurrent_password_checks>())) {}

asio::awaitable<bool> password_checker::check(std::shared_ptr<const login_table> table,
                                              credentials given) {
  auto& lane = lanes_[next_lane_];
  next_lane_ = (next_lane_ + 1) % lanes_.size();
  auto job = [t = std::move(table), c = std::move(given)]() mutable {
    const bool valid = t->verify(c.name, c.password);
    c.password.wipe();
    return valid;
  };
  const bool valid = co_await run_blocking(lane, loop_, std::move(job));
  co_return valid;
}

}  // namespace oauth_relay::relay
