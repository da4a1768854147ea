// The deadline idiom on a real event loop with short times.
#include "common/deadline.hpp"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

namespace oauth_relay {
namespace {

using namespace std::chrono_literals;

TEST(deadline, runs_the_action_once_when_it_passes) {
  boost::asio::io_context io;
  int fired = 0;
  deadline d(io.get_executor(), [&] { ++fired; });
  d.arm(10ms);
  io.run_for(200ms);
  EXPECT_EQ(fired, 1);
  EXPECT_TRUE(d.expired());
}

TEST(deadline, disarmed_or_rearmed_later_does_not_fire_early) {
  boost::asio::io_context io;
  int fired = 0;
  deadline d(io.get_executor(), [&] { ++fired; });
  d.arm(20ms);
  d.disarm();
  io.run_for(60ms);
  EXPECT_EQ(fired, 0);
  EXPECT_FALSE(d.expired());

  io.restart();
  d.arm(20ms);
  boost::asio::steady_timer push(io, 10ms);
  push.async_wait([&](boost::system::error_code) { d.arm(150ms); });
  io.run_for(60ms);
  EXPECT_EQ(fired, 0);  // moved later before it passed
  io.restart();
  io.run_for(300ms);
  EXPECT_EQ(fired, 1);
}

TEST(deadline, moving_it_sooner_takes_effect) {
  boost::asio::io_context io;
  int fired = 0;
  deadline d(io.get_executor(), [&] { ++fired; });
  d.arm(10s);
  d.arm(10ms);
  const auto start = deadline::clock::now();
  io.run_for(2s);
  EXPECT_EQ(fired, 1);
  EXPECT_LT(deadline::clock::now() - start, 2s);  // the loop ran out of work, not of time
}

TEST(deadline, disarmed_it_leaves_no_work_on_the_loop) {
  boost::asio::io_context io;
  deadline d(io.get_executor(), [] {});
  d.arm(std::chrono::hours(1));
  d.disarm();
  const auto start = deadline::clock::now();
  io.run();  // returns at once: nothing is pending
  EXPECT_LT(deadline::clock::now() - start, std::chrono::seconds(30));
}

TEST(deadline, rearming_clears_expired) {
  boost::asio::io_context io;
  deadline d(io.get_executor(), [] {});
  d.arm(1ms);
  io.run_for(100ms);
  ASSERT_TRUE(d.expired());
  d.arm(10s);
  EXPECT_FALSE(d.expired());
}

TEST(deadline, never_calls_back_after_it_is_destroyed) {
  boost::asio::io_context io;
  int fired = 0;
  {
    deadline d(io.get_executor(), [&] { ++fired; });
    d.arm(1ms);
  }
  io.run_for(50ms);
  EXPECT_EQ(fired, 0);
}

}  // namespace
}  // namespace oauth_relay
