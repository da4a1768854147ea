// Password checks leave the event loop: the answer comes back on the loop's
// thread, the loop runs other work while a check waits for the pool, and
// checks queue one behind the other (at most max_concurrent_password_checks).
#include "relay/smtp/password_checker.hpp"

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;

credentials given(const std::string& name, const std::string& password) {
  credentials c;
  c.name = name;
  c.password = secret(password);
  return c;
}

TEST(password_checker, answers_on_the_loop_and_never_blocks_it) {
  asio::io_context loop;
  asio::thread_pool pool(2);
  password_checker checker(loop.get_executor(), pool.get_executor());
  const auto table = std::make_shared<const login_table>(std::vector<login_entry>{
      {"scanner", *hash_password(secret("right"))}, {"nas", *hash_password(secret("other"))}});
  const auto loop_thread = std::this_thread::get_id();

  std::vector<std::pair<std::string, bool>> answers;
  bool answered_on_loop = true;
  const auto ask = [&](std::string name, std::string password) -> asio::awaitable<void> {
    const bool valid = co_await checker.check(table, given(name, password));
    answered_on_loop = answered_on_loop && std::this_thread::get_id() == loop_thread;
    answers.emplace_back(name + ":" + password, valid);
  };
  // Both pool threads wait until the loop lets them go: no check can finish
  // before the loop has run the handler below, unless it ran on the loop.
  std::promise<void> release;
  const auto released = release.get_future().share();
  for (int i = 0; i < 2; ++i) asio::post(pool, [released] { released.wait(); });
  for (const auto& [name, password] : std::vector<std::pair<std::string, std::string>>{
           {"scanner", "right"}, {"scanner", "wrong"}, {"nas", "other"}, {"nobody", "right"}}) {
    asio::co_spawn(loop, ask(name, password), asio::detached);
  }
  bool loop_ran_while_checks_waited = false;
  asio::post(loop, [&] {
    loop_ran_while_checks_waited = answers.empty();
    release.set_value();
  });
  loop.run();
  pool.join();

  ASSERT_EQ(answers.size(), 4u);
  // One lane: they come back in the order they were asked.
  EXPECT_EQ(answers[0], (std::pair<std::string, bool>{"scanner:right", true}));
  EXPECT_EQ(answers[1], (std::pair<std::string, bool>{"scanner:wrong", false}));
  EXPECT_EQ(answers[2], (std::pair<std::string, bool>{"nas:other", true}));
  EXPECT_EQ(answers[3], (std::pair<std::string, bool>{"nobody:right", false}));
  EXPECT_TRUE(answered_on_loop);
  EXPECT_TRUE(loop_ran_while_checks_waited);
}

}  // namespace
}  // namespace oauth_relay::relay
