// Password checks leave the event loop: the answer comes back on the loop's
// thread, the loop runs other work while a check runs, checks queue one
// behind the other on the checker's own thread, which runs at a lower
// priority than the rest of the daemon.
#include "relay/smtp/password_checker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;

credentials given(const std::string& name, const std::string& password) {
  credentials c;
  c.name = name;
  c.password = secret(password);
  return c;
}

// The nice values of this process's threads (proc(5): field 19 of
// /proc/self/task/TID/stat, counted after the command's closing parenthesis).
std::vector<int> thread_nice_values() {
  std::vector<int> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::istringstream fields(stat.substr(stat.rfind(')') + 2));
    std::string field;
    for (int i = 3; i <= 19 && fields >> field; ++i) {
      if (i == 19) out.push_back(std::stoi(field));
    }
  }
  return out;
}

TEST(password_checker, answers_on_the_loop_and_never_blocks_it) {
  asio::io_context loop;
  password_checker checker(loop.get_executor());
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
  for (const auto& [name, password] : std::vector<std::pair<std::string, std::string>>{
           {"scanner", "right"}, {"scanner", "wrong"}, {"nas", "other"}, {"nobody", "right"}}) {
    asio::co_spawn(loop, ask(name, password), asio::detached);
  }
  // Queued behind the four starts and before any answer (an answer is
  // posted to the loop only once its check ran on the hashing thread): had a
  // check run on the loop, its answer would be in before this handler runs.
  bool loop_ran_while_checks_waited = false;
  asio::post(loop, [&] { loop_ran_while_checks_waited = answers.empty(); });
  loop.run();

  ASSERT_EQ(answers.size(), 4u);
  // One lane: they come back in the order they were asked.
  EXPECT_EQ(answers[0], (std::pair<std::string, bool>{"scanner:right", true}));
  EXPECT_EQ(answers[1], (std::pair<std::string, bool>{"scanner:wrong", false}));
  EXPECT_EQ(answers[2], (std::pair<std::string, bool>{"nas:other", true}));
  EXPECT_EQ(answers[3], (std::pair<std::string, bool>{"nobody:right", false}));
  EXPECT_TRUE(answered_on_loop);
  EXPECT_TRUE(loop_ran_while_checks_waited);
}

TEST(password_checker, hashes_on_a_thread_of_lower_priority) {
  asio::io_context loop;
  password_checker checker(loop.get_executor());
  const auto table = std::make_shared<const login_table>(
      std::vector<login_entry>{{"scanner", *hash_password(secret("right"))}});
  bool valid = false;
  asio::co_spawn(
      loop,
      [&]() -> asio::awaitable<void> {
        valid = co_await checker.check(table, given("scanner", "right"));
      },
      asio::detached);
  loop.run();
  EXPECT_TRUE(valid);
  const auto nice = thread_nice_values();
  // This thread at the process's own value, the hashing thread at 10 more.
  EXPECT_EQ(std::count(nice.begin(), nice.end(), password_check_nice), 1)
      << testing::PrintToString(nice);
}

}  // namespace
}  // namespace oauth_relay::relay
