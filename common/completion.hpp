// A completion handler kept for later and run on its own executor: how work
// done on another thread (the spool's writer, the blocking pool) hands its
// result back to a coroutine on the event loop.
#pragma once

#include <memory>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

namespace oauth_relay {

// Type-erased, for queues of pending operations. (Boost 1.81's
// any_completion_handler recurses without end with awaitable handlers, so
// this small version is used instead.)
template <typename Result>
struct completion {
  virtual ~completion() = default;
  // Posts the handler with `result` to the handler's executor. Call once.
  virtual void post(Result result) = 0;
};

template <typename Result>
using completion_ptr = std::unique_ptr<completion<Result>>;

namespace detail {

template <typename Result, typename Handler>
struct completion_impl final : completion<Result> {
  completion_impl(Handler h, const boost::asio::any_io_executor& fallback)
      : handler(std::move(h)),
        // Tracked work keeps the event loop running while the operation is pending.
        work(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                 boost::asio::execution::outstanding_work.tracked)) {}
  void post(Result result) override {
    auto w = std::move(work);
    boost::asio::post(w, [h = std::move(handler), r = std::move(result)]() mutable {
      std::move(h)(std::move(r));
    });
  }
  Handler handler;
  decltype(boost::asio::prefer(
      boost::asio::get_associated_executor(std::declval<Handler&>(),
                                           std::declval<const boost::asio::any_io_executor&>()),
      boost::asio::execution::outstanding_work.tracked)) work;
};

}  // namespace detail

// Wraps `handler` (from async_initiate); it runs on its associated executor,
// or on `fallback` when it has none.
template <typename Result, typename Handler>
completion_ptr<Result> make_completion(Handler handler,
                                       const boost::asio::any_io_executor& fallback) {
  return std::make_unique<detail::completion_impl<Result, Handler>>(std::move(handler), fallback);
}

}  // namespace oauth_relay
