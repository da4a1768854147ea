// Helpers for the spool's tests: run one spool operation to its end on a
// test's io_context, and check a result with its failure shown.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <optional>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "relay/spool/content.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay::spool_test_support {

// Runs `op` on `io` until it completes and returns its result.
template <typename T>
T run_op(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  std::optional<T> out;
  std::exception_ptr error;
  boost::asio::co_spawn(io, std::move(op), [&](std::exception_ptr e, T r) {
    error = e;
    out.emplace(std::move(r));
  });
  io.restart();
  while (!out) io.run_one();
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}

// A look at the queue for its due messages oldest first only, as most tests make.
inline due_request oldest_due(std::int64_t now_ms, std::size_t limit, message_id_set busy) {
  due_request r;
  r.now_ms = now_ms;
  r.oldest = limit;
  r.busy = std::move(busy);
  return r;
}

// All of a content the spool handed out, or why there is none.
inline spool_result<std::string> text_of(spool_result<message_content> content) {
  if (!content) return content.error();
  return content->read_prefix(content->size());
}

// Success, or the failure's code and detail for the test's output.
template <typename T>
testing::AssertionResult stored(const spool_result<T>& result) {
  if (result) return testing::AssertionSuccess();
  return testing::AssertionFailure()
         << "spool_errc " << static_cast<int>(result.error().code) << ": " << result.error().detail;
}

// The failure's code; a test fails when there is none.
template <typename T>
std::optional<spool_errc> failure_code(const spool_result<T>& result) {
  if (result) return std::nullopt;
  return result.error().code;
}

}  // namespace oauth_relay::relay::spool_test_support
