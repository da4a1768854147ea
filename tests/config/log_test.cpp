// The log line format: `<N>event=NAME key=value ...`, values quoted and
// escaped (as the config's error messages escape them) only when they must be.
#include "config/log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

namespace oauth_relay::log {
namespace {

// What `write_line` writes to standard error.
template <typename Write>
std::string captured(Write write_line) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  const int saved = ::dup(STDERR_FILENO);
  ::dup2(fds[1], STDERR_FILENO);
  write_line();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  ::close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  ::close(fds[0]);
  return out;
}

TEST(log_line, plain_values_as_they_are) {
  EXPECT_EQ(captured([] { info("session_start").kv("session", "s1").kv("port", 25); }),
            "<6>event=session_start session=s1 port=25\n");
}

TEST(log_line, values_that_need_it_are_quoted_and_escaped) {
  EXPECT_EQ(captured([] {
              warning("x")
                  .kv("empty", "")
                  .kv("space", "a b")
                  .kv("equals", "a=b")
                  .kv("quote", "say \"hi\"")
                  .kv("backslash", "C:\\x");
            }),
            "<4>event=x empty=\"\" space=\"a b\" equals=\"a=b\" quote=\"say \\\"hi\\\"\" "
            "backslash=\"C:\\\\x\"\n");
}

// A client can put anything in what it sends (HELO names, addresses); the
// line must stay one line.
TEST(log_line, control_characters_become_hex_escapes) {
  EXPECT_EQ(captured([] { error("x").kv("helo", std::string("a\r\nb\tc\0d\x7f", 9)); }),
            "<3>event=x helo=\"a\\x0d\\x0ab\\x09c\\x00d\\x7f\"\n");
}

TEST(log_line, below_the_threshold_nothing_is_written) {
  set_threshold(level::info);
  EXPECT_EQ(captured([] { debug("x").kv("a", "b"); }), "");
  set_threshold(level::debug);
  EXPECT_EQ(captured([] { debug("x").kv("a", "b"); }), "<7>event=x a=b\n");
  set_threshold(level::info);
}

}  // namespace
}  // namespace oauth_relay::log
