// A check runs on the checker's own low-priority thread (common/offload.hpp);
// the session's coroutine resumes on the loop.
#include "relay/smtp/password_checker.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include "common/offload.hpp"

namespace oauth_relay::relay {

namespace asio = boost::asio;

password_checker::password_checker(asio::any_io_executor loop) : loop_(std::move(loop)) {
  // Runs first on the hashing thread. Raising one's own nice value needs no
  // privilege; if it fails anyway the checks just run at normal priority.
  asio::post(hashing_, [] {
    (void)::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), password_check_nice);
  });
}

password_checker::~password_checker() {
  // A check in progress finishes (milliseconds); those not started are
  // dropped with their sessions, which are gone by now.
  hashing_.stop();
  hashing_.join();
}

asio::awaitable<bool> password_checker::check(std::shared_ptr<const login_table> table,
                                              credentials given) {
  auto job = [t = std::move(table), c = std::move(given)]() mutable {
    const bool valid = t->verify(c.name, c.password);
    c.password.wipe();
    return valid;
  };
  const bool valid = co_await run_blocking(hashing_.get_executor(), loop_, std::move(job));
  co_return valid;
}

}  // namespace oauth_relay::relay
