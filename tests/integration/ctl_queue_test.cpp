// The real oauth-relayctl queue, queue retry/delete (control socket) and
// status (health socket) as clients of the daemon's API, against stand-in
// sockets answering its JSON; and the command line's exit statuses (0, 1
// with error and hint, 2).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "integration/support/ctl_process.hpp"
#include "integration/support/fake_daemon_socket.hpp"
#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {
namespace {

using json = nlohmann::json;

constexpr const char* queue_json = R"({"messages":[
  {"id":"m1","account":"alice@example.com","sender":"cron@host.example","size":2048,
   "age_seconds":300,"attempts":2,"next_attempt_in_seconds":120,
   "last_error":"451 4.3.0 Try again later",
   "recipients":[{"address":"a@example.org","state":"pending","last_reply":"451 4.3.0 Try again later"},
                 {"address":"b@example.org","state":"delivered","last_reply":"250 2.0.0 OK"}]},
  {"id":"m2","account":"alice@example.com","sender":"","size":512,"age_seconds":20,
   "attempts":0,"next_attempt_in_seconds":0,"last_error":"",
   "recipients":[{"address":"c@example.org","state":"pending","last_reply":""}]}]})";

constexpr const char* healthy_json = R"({"status":"ok","version":"0.1.0","uptime_seconds":7380,
  "queue":{"depth":2,"deferred":1,"oldest_age_seconds":300},
  "accounts":[{"address":"alice@example.com","token_state":"valid",
               "access_expires_in_seconds":3120,"last_delivery":"2026-11-30T08:00:00Z",
               "last_error":null}],
  "problems":[]})";

constexpr const char* degraded_json = R"({"status":"degraded","version":"0.1.0","uptime_seconds":45,
  "queue":{"depth":0,"deferred":0,"oldest_age_seconds":0},
  "accounts":[{"address":"alice@example.com","token_state":"valid",
               "access_expires_in_seconds":3120,"last_delivery":"2026-11-30T08:00:00Z",
               "last_error":null},
              {"address":"ops@example.com","token_state":"needs_reauth",
               "access_expires_in_seconds":null,"last_delivery":null,
               "last_error":"token endpoint refused the refresh token"}],
  "problems":["account ops@example.com needs re-authorization: run \"oauth-relayctl authorize ops@example.com\""]})";

class ctl_queue : public testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(config_) << "listen: [\"127.0.0.1:0\"]\n"
                           << "state_dir: " << (dir_.path() / "state").string() << "\n"
                           << "health_socket: " << socket_.string() << "\n"
                           << minimal_config_body();
  }

  ctl_result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", config_.string()});
    return run_ctl(args);
  }

  // The control socket (queue commands).
  fake_daemon_socket& daemon() {
    if (!daemon_) daemon_ = std::make_unique<fake_daemon_socket>(control_);
    return *daemon_;
  }
  // The health socket (status).
  fake_daemon_socket& health() {
    if (!health_) health_ = std::make_unique<fake_daemon_socket>(socket_);
    return *health_;
  }

  temp_dir dir_;
  std::filesystem::path config_ = dir_.path() / "config.yaml";
  std::filesystem::path socket_ = dir_.path() / "health.sock";
  std::filesystem::path control_ = dir_.path() / "control.sock";  // beside health_socket
  std::unique_ptr<fake_daemon_socket> daemon_;
  std::unique_ptr<fake_daemon_socket> health_;
};

TEST_F(ctl_queue, queue_lists_messages_oldest_first) {
  daemon().answer("GET", "/queue?limit=100", 200, queue_json);
  const auto r = ctl({"queue"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out_lines,
            (std::vector<std::string>{
                "2 messages in the queue, oldest first",
                "m1  from <cron@host.example>  via alice@example.com  2.0 KB  age 5m  attempts 2  "
                "next attempt in 2m",
                "    to <a@example.org>: pending (451 4.3.0 Try again later)",
                "    to <b@example.org>: delivered (250 2.0.0 OK)",
                "    last error: 451 4.3.0 Try again later",
                "m2  from <>  via alice@example.com  512 B  age 20s  attempts 0  next attempt now",
                "    to <c@example.org>: pending"}));
  ASSERT_EQ(daemon().requests().size(), 1u);
  EXPECT_EQ(daemon().requests()[0].method, "GET");
  EXPECT_EQ(daemon().requests()[0].target, "/queue?limit=100");
}

// A long queue comes a page at a time: the request names the page, the
// text says how to get the next, --json passes next_after through.
TEST_F(ctl_queue, queue_pages_say_how_to_get_the_next) {
  const std::string page = R"({"messages":[
    {"id":"m3","account":"alice@example.com","sender":"cron@host.example","size":10,
     "age_seconds":5,"attempts":0,"next_attempt_in_seconds":0,"last_error":"",
     "recipients":[{"address":"a@example.org","state":"pending","last_reply":""}]}],
    "next_after":"4711"})";
  daemon().answer("GET", "/queue?limit=1&after=17", 200, page);
  auto r = ctl({"queue", "--limit", "1", "--after", "17"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out_lines,
            (std::vector<std::string>{
                "1 message further on, oldest first (more follow)",
                "m3  from <cron@host.example>  via alice@example.com  10 B  age 5s  attempts 0  "
                "next attempt now",
                "    to <a@example.org>: pending",
                "next page: oauth-relayctl queue --after 4711 --limit 1"}));
  r = ctl({"queue", "--json", "--limit", "1", "--after", "17"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["next_after"], "4711");
  daemon().answer("GET", "/queue?limit=100&after=4711", 200,
                  R"({"messages":[],"next_after":null})");
  r = ctl({"queue", "--after", "4711"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "no more messages\n");
  ASSERT_EQ(daemon().requests().size(), 3u);
  EXPECT_EQ(daemon().requests()[2].target, "/queue?limit=100&after=4711");

  // Bad pages are usage errors, asked of no daemon.
  for (const std::vector<std::string>& args : {std::vector<std::string>{"queue", "--limit", "0"},
                                               {"queue", "--limit", "1001"},
                                               {"queue", "--after", "m1"},
                                               {"queue", "--after", "-3"}}) {
    EXPECT_EQ(ctl(args).status, 2) << args[1] << " " << args[2];
  }
  EXPECT_EQ(daemon().requests().size(), 3u);
}

TEST_F(ctl_queue, queue_json_is_the_daemons_document) {
  daemon().answer("GET", "/queue?limit=100", 200, queue_json);
  const auto r = ctl({"queue", "--json"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(json::parse(r.out), json::parse(queue_json));
}

TEST_F(ctl_queue, an_empty_queue) {
  daemon().answer("GET", "/queue?limit=100", 200, R"({"messages":[]})");
  const auto r = ctl({"queue"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "the queue is empty\n");
}

TEST_F(ctl_queue, retry_ids_posts_them_and_fails_on_unknown_ones) {
  daemon().answer("POST", "/queue/retry", 200, R"({"changed":1,"unknown":["nope"]})");
  const auto r = ctl({"queue", "retry", "m1", "nope"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "1 message due now\n");
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: not in the queue: nope",
                "hint: list the queued messages and their ids with: oauth-relayctl queue"}));
  const auto requests = daemon().requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/queue/retry");
  EXPECT_EQ(requests[0].content_type, "application/json");
  EXPECT_EQ(json::parse(requests[0].body), json::parse(R"({"ids":["m1","nope"]})"));
}

TEST_F(ctl_queue, retry_all) {
  daemon().answer("POST", "/queue/retry", 200, R"({"changed":3,"unknown":[]})");
  const auto r = ctl({"queue", "retry", "--all"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "3 messages due now\n");
  EXPECT_EQ(json::parse(daemon().requests().at(0).body), json::parse(R"({"all":true})"));
}

TEST_F(ctl_queue, retry_needs_ids_or_all_but_not_both) {
  EXPECT_EQ(ctl({"queue", "retry"}).status, 2);
  EXPECT_EQ(ctl({"queue", "retry", "--all", "m1"}).status, 2);
  EXPECT_TRUE(daemon().requests().empty());
}

TEST_F(ctl_queue, delete_posts_ids) {
  daemon().answer("POST", "/queue/delete", 200, R"({"deleted":2,"unknown":[]})");
  const auto r = ctl({"queue", "delete", "m1", "m2"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "2 messages deleted\n");
  EXPECT_EQ(json::parse(daemon().requests().at(0).body), json::parse(R"({"ids":["m1","m2"]})"));
  EXPECT_EQ(ctl({"queue", "delete"}).status, 2);  // ids are required
}

TEST_F(ctl_queue, delete_json_passes_the_answer_through) {
  daemon().answer("POST", "/queue/delete", 200, R"({"deleted":0,"unknown":["x"]})");
  const auto r = ctl({"queue", "delete", "x", "--json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(json::parse(r.out), json::parse(R"({"deleted":0,"unknown":["x"]})"));
  EXPECT_EQ(r.err_lines.at(0), "error: not in the queue: x");
}

TEST_F(ctl_queue, a_daemon_refusal_is_reported_with_its_text) {
  daemon().answer("POST", "/queue/retry", 400, R"({"error":"ids must be strings"})");
  const auto r = ctl({"queue", "retry", "m1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: oauth-relayd answered POST /queue/retry with HTTP 400: ids must be strings",
                "hint: journalctl -u oauth-relay shows what the daemon logged about it"}));
}

TEST_F(ctl_queue, status_ok_is_readable_and_exits_0) {
  health().answer("GET", "/health", 200, healthy_json);
  const auto r = ctl({"status"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out_lines,
            (std::vector<std::string>{
                "oauth-relayd 0.1.0: ok (up 2h 3m)", "queue: 2 messages, 1 deferred, oldest 5m",
                "accounts:",
                "  alice@example.com  valid  access token expires in 52m  last delivery "
                "2026-11-30T08:00:00Z"}));
  EXPECT_EQ(r.err, "");
}

TEST_F(ctl_queue, status_degraded_lists_the_problems_and_exits_1) {
  health().answer("GET", "/health", 503, degraded_json);
  const auto r = ctl({"status"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(
      r.out_lines,
      (std::vector<std::string>{
          "oauth-relayd 0.1.0: degraded (up 45s)", "queue: 0 messages, 0 deferred", "accounts:",
          "  alice@example.com  valid" + std::string(9, ' ') +
              "access token expires in 52m  last delivery 2026-11-30T08:00:00Z",
          "  ops@example.com    needs_reauth  no access token" + std::string(14, ' ') +
              "no delivery yet" + std::string(21, ' ') +
              "last error: token endpoint refused the refresh token",
          "problems:",
          "  - account ops@example.com needs re-authorization: run \"oauth-relayctl "
          "authorize ops@example.com\""}));
  EXPECT_EQ(r.err_lines, (std::vector<std::string>{"error: oauth-relayd is degraded (1 problem)",
                                                   "hint: each problem above says what to do"}));
}

TEST_F(ctl_queue, status_json_is_one_document_with_the_same_exit_status) {
  health().answer("GET", "/health", 503, degraded_json);
  auto r = ctl({"status", "--json"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(json::parse(r.out), json::parse(degraded_json));
  health().answer("GET", "/health", 200, healthy_json);
  r = ctl({"status", "--json"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(json::parse(r.out), json::parse(healthy_json));
}

TEST_F(ctl_queue, no_daemon_means_not_running) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"status"}, {"queue"}, {"queue", "retry", "--all"}, {"queue", "delete", "m1"}}) {
    const auto r = ctl(args);
    EXPECT_EQ(r.status, 1) << args[0];
    EXPECT_EQ(r.out, "");
    const auto& socket = args[0] == "status" ? socket_ : control_;
    EXPECT_EQ(r.err_lines,
              (std::vector<std::string>{
                  "error: oauth-relayd is not running (cannot connect to " + socket.string() + ")",
                  "hint: start it: systemctl start oauth-relay"}));
  }
}

// Each command asks the socket it belongs to and no other: a health socket
// answering /queue (an old daemon) is never asked for the queue.
TEST_F(ctl_queue, the_queue_goes_to_the_control_socket_and_status_to_the_health_socket) {
  health().answer("GET", "/health", 200, healthy_json);
  health().answer("GET", "/queue", 200, queue_json);
  daemon().answer("GET", "/queue?limit=100", 200, R"({"messages":[]})");
  EXPECT_EQ(ctl({"queue"}).out, "the queue is empty\n");
  EXPECT_EQ(ctl({"status"}).status, 0);
  ASSERT_EQ(health().requests().size(), 1u);
  EXPECT_EQ(health().requests()[0].target, "/health");
  ASSERT_EQ(daemon().requests().size(), 1u);
  EXPECT_EQ(daemon().requests()[0].target, "/queue?limit=100");
}

TEST_F(ctl_queue, a_daemon_without_the_endpoint_is_a_version_mismatch) {
  daemon();  // answers 404 {"error":"not found"} to everything
  const auto r = ctl({"queue"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: oauth-relayd answered GET /queue with HTTP 404: not found",
                "hint: oauth-relayd and oauth-relayctl must be the same version: oauth-relayd "
                "--version; oauth-relayctl --version"}));
}

TEST_F(ctl_queue, command_line_exit_statuses) {
  auto r = run_ctl({"--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("authorize"), std::string::npos);
  r = run_ctl({"--version"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.out, "oauth-relayctl 0.1.0\n");
  r = run_ctl({"queue", "--help"});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(run_ctl({}).status, 2);
  EXPECT_EQ(run_ctl({"--no-such-option", "status"}).status, 2);
  EXPECT_EQ(run_ctl({"frobnicate"}).status, 2);
  EXPECT_EQ(run_ctl({"authorize"}).status, 2);
  EXPECT_EQ(run_ctl({"authorize", "a@example.com", "--port", "70000"}).status, 2);
  EXPECT_EQ(run_ctl({"import", "a@example.com"}).status, 2);
}

TEST_F(ctl_queue, a_bad_config_is_reported_with_positions) {
  std::ofstream(config_, std::ios::app) << "limits:\n  max_recipents: 5\n";
  const auto r = ctl({"status"});
  EXPECT_EQ(r.status, 1);
  ASSERT_EQ(r.err_lines.size(), 3u) << r.err;
  EXPECT_EQ(r.err_lines[0].rfind(config_.string() + ":", 0), 0u) << r.err_lines[0];
  EXPECT_EQ(r.err_lines[1],
            "error: the configuration " + config_.string() + " is not valid (see above)");
  EXPECT_EQ(r.err_lines[2], "hint: fix the lines named above; oauth-relayd -c " + config_.string() +
                                " --check-config checks it again");
}

}  // namespace
}  // namespace oauth_relay::test_support
