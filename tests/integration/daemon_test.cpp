// oauth-relayd as a process: config checking, durability across kill -9,
// SIGTERM and SIGHUP, the systemd notify conversation, a full disk, and no
// secret in the log.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <thread>

#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;

client_reply send_one(std::uint16_t port, const std::string& subject, std::size_t body_size = 0) {
  smtp_client client(port);
  std::string content = "Subject: " + subject + "\r\n\r\n";
  while (content.size() < body_size) content += std::string(70, 'b') + "\r\n";
  return client.send_message("sender@example.com", {"rcpt@example.org"}, content + "end\r\n");
}

TEST(daemon, check_config_accepts_a_good_file) {
  relay_process relay;
  auto result = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.out, relay.config_path().string() + ": ok\n");
  // Valid, but mail for root and postmaster would be refused: said, exit status 0.
  EXPECT_EQ(result.err,
            "warning: no alias for root: mail for <root@localhost> is refused (550 5.1.1); give "
            "it one in `aliases`\n"
            "warning: no alias for postmaster: mail for <postmaster@localhost> is refused (550 "
            "5.1.1); give it one in `aliases`\n");
  relay.write_config("aliases:\n  root: [admin@example.org]\n  postmaster: [root]\n" +
                     minimal_config_body());
  result = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(result.status, 0) << result.err;
  EXPECT_EQ(result.err, "");
}

TEST(daemon, check_config_names_file_line_and_column) {
  relay_process relay("limits:\n  max_recipients: 5\n  max_recipents: 5\n" + minimal_config_body());
  auto result = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(result.status, 1);
  // Lines 1-3 are the harness's listen/state_dir/health_socket.
  const std::string prefix = relay.config_path().string() + ":6:3: ";
  EXPECT_EQ(result.err.rfind(prefix, 0), 0u) << result.err;
  EXPECT_NE(result.err.find("max_recipents"), std::string::npos) << result.err;
}

TEST(daemon, dev_config_is_valid) {
  auto result =
      run_command({relayd_path(), "-c", source_dir() + "/config/dev.yaml", "--check-config"});
  EXPECT_EQ(result.status, 0) << result.err;
}

TEST(daemon, version_and_usage) {
  auto version = run_command({relayd_path(), "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out.rfind("oauth-relayd ", 0), 0u) << version.out;
  auto usage = run_command({relayd_path(), "--no-such-flag"});
  EXPECT_EQ(usage.status, 2);
}

TEST(daemon, kill9_right_after_250_loses_nothing) {
  relay_process relay;
  relay.start();
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto reply = send_one(relay.port(), "kill test " + std::to_string(i), i == 4 ? 600 * 1024 : 0);
    ASSERT_EQ(reply.code, 250) << reply.str();
    ids.push_back(queued_id(reply));
  }
  relay.kill9();
  relay.start();
  relay::spool_reader reader(relay.state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), ids.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    auto content = reader.content(ids[i]);
    ASSERT_TRUE(content.has_value()) << ids[i];
    EXPECT_NE(content->find("Subject: kill test " + std::to_string(i) + "\r\n"), std::string::npos);
    EXPECT_EQ(content->substr(content->size() - 5), "end\r\n");
  }
  // And it still accepts mail after the restart.
  EXPECT_EQ(send_one(relay.port(), "after restart").code, 250);
}

TEST(daemon, sigterm_finishes_data_then_says_421_and_exits_0) {
  relay_process relay;
  relay.start();
  smtp_client idle(relay.port());
  ASSERT_EQ(idle.read_reply().code, 220);
  smtp_client busy(relay.port());
  ASSERT_EQ(busy.read_reply().code, 220);
  ASSERT_EQ(busy.command("EHLO c").code, 250);
  ASSERT_EQ(busy.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(busy.command("RCPT TO:<a@example.org>").code, 250);
  ASSERT_EQ(busy.command("DATA").code, 354);
  busy.send("Subject: in flight\r\n\r\n");
  relay.signal(SIGTERM);
  EXPECT_EQ(idle.read_reply().str(), "421 4.3.2 relay.test Service shutting down");
  ASSERT_TRUE(relay.wait_for_log("event=stopping"));
  busy.send("finished after SIGTERM\r\n.\r\n");
  auto reply = busy.read_reply();
  EXPECT_EQ(reply.code, 250) << reply.str();
  EXPECT_EQ(busy.read_reply().code, 421);
  EXPECT_EQ(relay.stop(0, 15s), 0);  // signal 0: only wait for the exit
  relay::spool_reader reader(relay.state_dir());
  EXPECT_EQ(reader.messages().value().size(), 1u);
}

TEST(daemon, sighup_applies_a_good_config_and_keeps_the_old_on_a_bad_one) {
  relay_process relay("limits:\n  max_recipients: 1\n" + minimal_config_body());
  relay.start();
  auto recipients_accepted = [&] {
    smtp_client client(relay.port());
    client.read_reply();
    client.command("EHLO c");
    client.command("MAIL FROM:<sender@example.com>");
    int accepted = 0;
    for (const char* r : {"<a@example.org>", "<b@example.org>", "<c@example.org>"}) {
      if (client.command(std::string("RCPT TO:") + r).code == 250) ++accepted;
    }
    return accepted;
  };
  EXPECT_EQ(recipients_accepted(), 1);

  relay.write_config("limits:\n  max_recipients: 2\n" + minimal_config_body());
  relay.signal(SIGHUP);
  ASSERT_TRUE(relay.wait_for_log("event=config_reloaded"));
  EXPECT_EQ(recipients_accepted(), 2);

  relay.write_config("limits:\n  max_recipients: lots\n" + minimal_config_body());
  relay.signal(SIGHUP);
  ASSERT_TRUE(relay.wait_for_log("event=config_reload_failed"));
  EXPECT_EQ(recipients_accepted(), 2);
  EXPECT_NE(relay.log().find(relay.config_path().string() + ":5:19"), std::string::npos)
      << relay.log();
  EXPECT_EQ(relay.stop(SIGTERM), 0);
}

// Reads sd_notify datagrams sent to a socket the test owns.
class notify_socket {
 public:
  explicit notify_socket(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
      throw std::runtime_error("bind notify socket");
    }
    timeval timeout{0, 200000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~notify_socket() { ::close(fd_); }
  // Collects datagrams until one contains `wanted` (returns all seen), or times out.
  std::vector<std::string> until(const std::string& wanted,
                                 std::chrono::milliseconds timeout = 10s) {
    std::vector<std::string> seen;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      seen.emplace_back(buffer, static_cast<std::size_t>(n));
      if (seen.back().find(wanted) != std::string::npos) return seen;
    }
    ADD_FAILURE() << "no notification with " << wanted;
    return seen;
  }
  // Every datagram that arrives within `window`.
  std::vector<std::string> collect(std::chrono::milliseconds window) {
    std::vector<std::string> seen;
    const auto deadline = std::chrono::steady_clock::now() + window;
    while (std::chrono::steady_clock::now() < deadline) {
      char buffer[4096];
      ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
      if (n > 0) seen.emplace_back(buffer, static_cast<std::size_t>(n));
    }
    return seen;
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

TEST(daemon, talks_to_systemd_ready_watchdog_reloading_stopping) {
  relay_process relay;
  notify_socket notify(relay.dir() / "notify.sock");
  relay.start({{"NOTIFY_SOCKET", (relay.dir() / "notify.sock").string()},
               {"WATCHDOG_USEC", "200000"},
               {"WATCHDOG_PID", "$PID"}});
  auto startup = notify.until("READY=1");
  ASSERT_FALSE(startup.empty());
  EXPECT_NE(startup.back().find("STATUS=Accepting SMTP on 127.0.0.1:"), std::string::npos)
      << startup.back();
  // 200 ms watchdog: pings every 100 ms from the event loop.
  const auto begin = std::chrono::steady_clock::now();
  int pings = 0;
  while (pings < 5) {
    auto seen = notify.until("WATCHDOG=1", 2s);
    if (seen.empty() || seen.back().find("WATCHDOG=1") == std::string::npos) break;
    ++pings;
  }
  EXPECT_EQ(pings, 5);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 2s);

  relay.signal(SIGHUP);
  auto reload = notify.until("RELOADING=1");
  ASSERT_FALSE(reload.empty());
  EXPECT_NE(reload.back().find("MONOTONIC_USEC="), std::string::npos);
  auto ready = notify.until("READY=1");
  ASSERT_FALSE(ready.empty());

  relay.signal(SIGTERM);
  auto stopping = notify.until("STOPPING=1");
  ASSERT_FALSE(stopping.empty());
  EXPECT_EQ(relay.stop(0), 0);
}

std::size_t count_with(const std::vector<std::string>& datagrams, const std::string& text) {
  return static_cast<std::size_t>(std::count_if(datagrams.begin(), datagrams.end(), [&](auto& d) {
    return d.find(text) != std::string::npos;
  }));
}

// The index of the first datagram containing `text`, or -1.
long first_with(const std::vector<std::string>& datagrams, const std::string& text) {
  for (std::size_t i = 0; i < datagrams.size(); ++i) {
    if (datagrams[i].find(text) != std::string::npos) return static_cast<long>(i);
  }
  return -1;
}

TEST(daemon, watchdog_pings_at_half_the_interval_systemd_gives) {
  relay_process relay;
  notify_socket notify(relay.dir() / "notify.sock");
  relay.start({{"NOTIFY_SOCKET", (relay.dir() / "notify.sock").string()},
               {"WATCHDOG_USEC", "1000000"},
               {"WATCHDOG_PID", "$PID"}});
  ASSERT_FALSE(notify.until("READY=1").empty());
  // WatchdogSec=1s: a ping every 500 ms, so about 3 in 1.5 s. Only a loose
  // lower bound is asserted (a loaded machine may be late), and an upper one
  // that catches a ping loop.
  const auto window = notify.collect(1500ms);
  const auto pings = count_with(window, "WATCHDOG=1");
  EXPECT_GE(pings, 2u);
  EXPECT_LE(pings, 10u);
  EXPECT_EQ(relay.stop(SIGTERM), 0);
}

TEST(daemon, no_watchdog_pings_when_systemd_asks_for_none_or_for_another_process) {
  for (const auto& watchdog_pid : {std::string(), std::string("1")}) {
    relay_process relay;
    notify_socket notify(relay.dir() / "notify.sock");
    std::map<std::string, std::string> environment{
        {"NOTIFY_SOCKET", (relay.dir() / "notify.sock").string()}};
    if (!watchdog_pid.empty()) {
      environment["WATCHDOG_USEC"] = "200000";
      environment["WATCHDOG_PID"] = watchdog_pid;  // the watchdog is for PID 1, not us
    }
    relay.start(environment);
    ASSERT_FALSE(notify.until("READY=1").empty());
    EXPECT_EQ(count_with(notify.collect(600ms), "WATCHDOG=1"), 0u)
        << "WATCHDOG_PID=" << watchdog_pid;
    EXPECT_EQ(relay.stop(SIGTERM), 0);
  }
}

TEST(daemon, ready_means_smtp_and_health_socket_answer) {
  relay_process relay;
  notify_socket notify(relay.dir() / "notify.sock");
  relay.start({{"NOTIFY_SOCKET", (relay.dir() / "notify.sock").string()}});
  auto startup = notify.until("READY=1");
  ASSERT_FALSE(startup.empty());
  EXPECT_EQ(count_with(startup, "READY=1"), 1u);
  EXPECT_EQ(send_one(relay.port(), "right after READY").code, 250);
  auto health = run_command({"curl", "--silent", "--max-time", "10", "--unix-socket",
                             (relay.dir() / "health.sock").string(), "-o", "/dev/null", "-w",
                             "%{http_code}", "http://localhost/health"});
  EXPECT_EQ(health.out, "503");  // the harness's account has no token yet
  EXPECT_EQ(relay.stop(SIGTERM), 0);
}

TEST(daemon, sighup_says_reloading_then_ready_and_sigterm_says_stopping) {
  relay_process relay;
  notify_socket notify(relay.dir() / "notify.sock");
  relay.start({{"NOTIFY_SOCKET", (relay.dir() / "notify.sock").string()}});
  ASSERT_FALSE(notify.until("READY=1").empty());

  for (int round = 0; round < 2; ++round) {
    relay.signal(SIGHUP);
    auto reload = notify.until("READY=1");
    const auto reloading = first_with(reload, "RELOADING=1");
    const auto ready = first_with(reload, "READY=1");
    ASSERT_GE(reloading, 0) << "round " << round;
    EXPECT_LT(reloading, ready) << "READY=1 came before RELOADING=1";
    EXPECT_NE(reload[static_cast<std::size_t>(reloading)].find("MONOTONIC_USEC="),
              std::string::npos);
    EXPECT_NE(reload[static_cast<std::size_t>(ready)].find("STATUS=Accepting SMTP on"),
              std::string::npos)
        << reload[static_cast<std::size_t>(ready)];
  }
  // A bad file: still RELOADING then READY, with the old configuration kept.
  relay.write_config("limits:\n  max_recipients: lots\n" + minimal_config_body());
  relay.signal(SIGHUP);
  auto rejected = notify.until("READY=1");
  EXPECT_LT(first_with(rejected, "RELOADING=1"), first_with(rejected, "READY=1"));
  ASSERT_TRUE(relay.wait_for_log("event=config_reload_failed"));

  relay.signal(SIGTERM);
  auto stopping = notify.until("STOPPING=1");
  ASSERT_FALSE(stopping.empty());
  EXPECT_EQ(count_with(stopping, "READY=1"), 0u);
  EXPECT_EQ(relay.stop(0), 0);
  EXPECT_EQ(count_with(notify.collect(200ms), "READY=1"), 0u);
}

TEST(daemon, full_disk_answers_452_and_recovers_when_space_returns) {
  relay_process relay;
  std::filesystem::create_directories(relay.state_dir());
  if (::mount("tmpfs", relay.state_dir().c_str(), "tmpfs", 0, "size=4m") != 0) {
    GTEST_SKIP() << "needs permission to mount a small tmpfs (run as root)";
  }
  struct unmount {
    std::filesystem::path at;
    ~unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } guard{relay.state_dir()};
  relay.start();
  ASSERT_EQ(send_one(relay.port(), "before").code, 250);
  // Fill the disk.
  const auto filler = relay.state_dir() / "filler";
  {
    std::ofstream out(filler, std::ios::binary);
    std::string block(64 * 1024, 'f');
    for (int i = 0; i < 200 && out; ++i)
      out.write(block.data(), static_cast<std::streamsize>(block.size()));
  }
  // Small contents fail in SQLite, large ones while spilling to a file: both say 452.
  for (std::size_t size : {std::size_t{0}, std::size_t{600 * 1024}}) {
    int code = 0;
    for (int i = 0; i < 20 && code != 452; ++i) code = send_one(relay.port(), "full", size).code;
    EXPECT_EQ(code, 452) << "size " << size;
  }
  std::filesystem::remove(filler);
  EXPECT_EQ(send_one(relay.port(), "after").code, 250);
  EXPECT_EQ(send_one(relay.port(), "after big", 600 * 1024).code, 250);
  relay.kill9();
  relay::spool_reader reader(relay.state_dir());
  int full = 0;
  for (const auto& m : reader.messages().value()) {
    auto content = reader.content(m.id);
    ASSERT_TRUE(content.has_value());
    if (content->find("Subject: full") != std::string::npos) ++full;
    EXPECT_EQ(content->substr(content->size() - 5), "end\r\n");  // nothing half-written
  }
  EXPECT_EQ(full, 0) << "a message answered 452 was stored";
}

TEST(daemon, uses_a_socket_passed_by_systemd) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  const auto port = ntohs(address.sin_port);

  relay_process relay;
  relay.start({}, fd);
  ::close(fd);
  EXPECT_EQ(relay.port(), port);
  EXPECT_NE(relay.log().find("socket_activated=yes"), std::string::npos) << relay.log();
  EXPECT_EQ(send_one(port, "socket activated").code, 250);
  EXPECT_EQ(relay.stop(SIGTERM), 0);
}

TEST(daemon, secrets_never_reach_the_log) {
  relay_process relay;
  relay.start();
  EXPECT_EQ(send_one(relay.port(), "secret test").code, 250);
  relay.write_config(
      "oauth:\n  client_id: x\n  client_secret: \"s3cret-never-logged\"\n"
      "  bogus: 1\naccounts: []\n");
  relay.signal(SIGHUP);
  ASSERT_TRUE(relay.wait_for_log("event=config_reload_failed"));
  EXPECT_EQ(relay.stop(SIGTERM), 0);
  EXPECT_EQ(relay.log().find("s3cret-never-logged"), std::string::npos) << relay.log();
}

}  // namespace
}  // namespace oauth_relay::test_support
