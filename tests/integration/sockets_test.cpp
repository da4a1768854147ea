// Monitoring reads, administrators change: the real oauth-relayd's health
// socket (0660, the monitoring group) and control socket (0600, root and the
// daemon's user), used by real curl and oauth-relayctl as a real unprivileged
// user in the monitoring group, as a user outside it, and as root.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/scratch_user.hpp"

namespace oauth_relay::test_support {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct curl_answer {
  int exit = -1;   // curl's exit status: 0 when HTTP happened, 7 when it could not connect
  int status = 0;  // the HTTP status
  std::string body;
  std::string err;
};

// curl --unix-socket, as `user` (or root without one).
curl_answer curl(const scratch_user* user, const fs::path& socket, const std::string& method,
                 const std::string& path, const std::string& body = {}) {
  std::vector<std::string> argv = {"curl", "--silent",      "--show-error",   "--max-time",
                                   "10",   "--unix-socket", socket.string(),  "--output",
                                   "-",    "--write-out",   "\n%{http_code}", "-X",
                                   method};
  if (!body.empty())
    argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
  argv.push_back("http://localhost" + path);
  const auto r = user ? user->run(argv) : run_command(argv);
  curl_answer out;
  out.exit = r.status;
  out.err = r.err;
  const auto last = r.out.rfind('\n');
  if (last != std::string::npos) {
    out.body = r.out.substr(0, last);
    out.status = std::atoi(r.out.c_str() + last + 1);
  }
  return out;
}

struct socket_file {
  unsigned mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

socket_file socket_state(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  EXPECT_TRUE(S_ISSOCK(st.st_mode)) << p;
  return {static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid};
}

class sockets : public testing::Test {
 protected:
  void SetUp() override {
    if (auto why = scratch_users_unavailable(); !why.empty()) GTEST_SKIP() << why;
    monitor_.emplace("orm-mon");
    watcher_.emplace("orm-watch", std::vector<std::string>{monitor_->name()});
    outsider_.emplace("orm-out");
    relay_.emplace();
    // The sockets' directory as the package's tmpfiles.d makes
    // /run/oauth-relay: anyone may pass through, and what is made in it
    // takes the monitoring group (set-group-ID).
    ASSERT_EQ(::chown(relay_->dir().c_str(), 0, monitor_->gid()), 0);
    ASSERT_EQ(::chmod(relay_->dir().c_str(), 02711), 0);
    relay_->start();
  }

  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  fs::path health() const { return relay_->dir() / "health.sock"; }
  fs::path control() const { return relay_->dir() / "control.sock"; }

  command_result ctl_as(const scratch_user& user, std::vector<std::string> args) {
    args.insert(args.begin(), {relayctl_path(), "-c", relay_->config_path().string()});
    return user.run(args);
  }

  std::optional<scratch_group> monitor_;
  std::optional<scratch_user> watcher_;   // in the monitoring group
  std::optional<scratch_user> outsider_;  // in no group of oauth-relay's
  std::optional<relay_process> relay_;
};

TEST_F(sockets, each_socket_has_its_mode_and_group) {
  const auto h = socket_state(health());
  EXPECT_EQ(h.mode, 0660u);
  EXPECT_EQ(h.gid, monitor_->gid());
  const auto c = socket_state(control());
  EXPECT_EQ(c.mode, 0600u);
  EXPECT_EQ(c.uid, ::geteuid());
  EXPECT_NE(relay_->log().find("event=health_socket_listening path=" + health().string() +
                               " mode=0660 group=" + monitor_->name()),
            std::string::npos);
  EXPECT_NE(relay_->log().find("event=control_socket_listening path=" + control().string() +
                               " mode=0600 group=" + monitor_->name()),
            std::string::npos);
  EXPECT_NE(relay_->log().find("control_socket=" + control().string()), std::string::npos);
}

TEST_F(sockets, the_monitoring_group_reads_health_and_metrics_and_nothing_else) {
  const scratch_user& w = *watcher_;
  auto r = curl(&w, health(), "GET", "/health");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(r.status, 503);  // the harness's account has no token: degraded, but answered
  EXPECT_EQ(json::parse(r.body)["accounts"][0]["address"], "sender@example.com");
  r = curl(&w, health(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("oauth_relay_queue_messages 0\n"), std::string::npos) << r.body;

  // The health socket knows nothing else.
  for (const auto& [method, path] :
       std::vector<std::pair<std::string, std::string>>{{"GET", "/queue"},
                                                        {"POST", "/queue/retry"},
                                                        {"POST", "/queue/delete"},
                                                        {"POST", "/accounts/reload"},
                                                        {"GET", "/accounts"},
                                                        {"POST", "/accounts/import"}}) {
    r = curl(&w, health(), method, path, method == "POST" ? R"({"all":true})" : "");
    EXPECT_EQ(r.exit, 0) << r.err;
    EXPECT_EQ(r.status, 404) << method << " " << path;
    EXPECT_EQ(json::parse(r.body), json::parse(R"({"error":"not found"})"));
  }
  EXPECT_EQ(curl(&w, health(), "POST", "/health", "{}").status, 405);

  // The control socket does not let the monitoring user connect at all.
  r = curl(&w, control(), "GET", "/queue");
  EXPECT_EQ(r.exit, 7) << r.body;  // curl: could not connect
  EXPECT_EQ(r.status, 0);
  for (const char* event : {"event=queue_retry", "event=queue_delete", "event=accounts_reloaded",
                            "event=account_token_stored"}) {
    EXPECT_EQ(relay_->log().find(event), std::string::npos) << event;
  }
}

TEST_F(sockets, oauth_relayctl_as_a_monitoring_user_has_status_and_not_the_queue) {
  auto r = ctl_as(*watcher_, {"status"});
  EXPECT_EQ(r.status, 1);  // degraded: the account has no token
  EXPECT_EQ(split_lines(r.out).at(0).rfind("oauth-relayd 0.1.0: degraded (up ", 0), 0u) << r.out;
  EXPECT_EQ(split_lines(r.err).at(0), "error: oauth-relayd is degraded (1 problem)");

  const std::vector<std::string> refused = {
      "error: permission denied on " + control().string(),
      "hint: the control socket is for root and the user oauth-relayd runs as: run "
      "oauth-relayctl as root (sudo) or as that user"};
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"queue"}, {"queue", "retry", "--all"}, {"queue", "delete", "m1"}, {"accounts"}}) {
    r = ctl_as(*watcher_, args);
    EXPECT_EQ(r.status, 1) << args[0];
    EXPECT_EQ(split_lines(r.err), refused) << args[0];
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(sockets, a_user_outside_the_monitoring_group_reaches_neither_socket) {
  auto r = curl(&*outsider_, health(), "GET", "/health");
  EXPECT_EQ(r.exit, 7) << r.body;
  r = curl(&*outsider_, control(), "GET", "/queue");
  EXPECT_EQ(r.exit, 7) << r.body;
  const auto ctl = ctl_as(*outsider_, {"status"});
  EXPECT_EQ(ctl.status, 1);
  EXPECT_EQ(split_lines(ctl.err),
            (std::vector<std::string>{
                "error: permission denied on " + health().string(),
                "hint: run oauth-relayctl as root or as a member of the health socket's group "
                "(oauth-relay-monitor with the package: adduser USER oauth-relay-monitor)"}));
}

// Defence in depth: should the control socket's mode be widened, the daemon
// still serves only root and its own user (SO_PEERCRED).
TEST_F(sockets, a_widened_control_socket_still_refuses_other_users) {
  ASSERT_EQ(::chmod(control().c_str(), 0666), 0);
  auto r = curl(&*watcher_, control(), "POST", "/queue/delete", R"({"ids":["0123456789abcdef"]})");
  ASSERT_EQ(r.exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(json::parse(r.body),
            json::parse(R"({"error":"only root and the user oauth-relayd runs as may use )"
                        R"(control_socket"})"));
  EXPECT_NE(
      relay_->log().find("event=control_socket_refused uid=" + std::to_string(watcher_->uid())),
      std::string::npos)
      << relay_->log();
  EXPECT_EQ(relay_->log().find("event=queue_delete"), std::string::npos);
  // Root still is served.
  r = curl(nullptr, control(), "GET", "/queue");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), json::parse(R"({"messages":[],"next_after":null})"));
}

TEST_F(sockets, stop_removes_both_sockets) {
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
  EXPECT_FALSE(fs::exists(health()));
  EXPECT_FALSE(fs::exists(control()));
}

}  // namespace
}  // namespace oauth_relay::test_support
