// Running one blocking call off the event loop from a coroutine: `job` runs
// on `where` (the blocking pool, or a strand over it) and the coroutine
// resumes on `loop` with its result (common/completion.hpp hands it back).
#pragma once

#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/completion.hpp"

namespace oauth_relay {

// Pass `job` as a named variable, not a lambda written inside the co_await
// expression: GCC 12 destroys such a temporary's captures twice when they
// own memory (found with a credentials-capturing lambda under ASan).
template <typename Executor, typename Job>
boost::asio::awaitable<std::invoke_result_t<Job&>> run_blocking(Executor where,
                                                                boost::asio::any_io_executor loop,
                                                                Job job) {
  using result = std::invoke_result_t<Job&>;
  co_return co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                                 void(result)>(
      [&where, &loop](auto handler, Job j) {
        auto done = make_completion<result>(std::move(handler), loop);
        boost::asio::post(
            where, [done = std::move(done), j = std::move(j)]() mutable { done->post(j()); });
      },
      boost::asio::use_awaitable, std::move(job));
}

}  // namespace oauth_relay
