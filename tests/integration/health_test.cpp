// The health and control sockets of the real oauth-relayd, fetched with the
// real curl (`curl --unix-socket`): health and metrics parsed strictly, the
// queue listing, retry and delete (control socket) against the fake Gmail,
// also through oauth-relayctl, the sockets' modes and life, and a silent
// client that must not hold anyone else up.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "auth/token_manager.hpp"
#include "auth/token_store.hpp"
#include "db/sqlite.hpp"
#include "fakes/fake_gmail.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/prometheus_text.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gmail;
using fakes::fake_oauth;
using fakes::test_pki;
using nlohmann::json;

constexpr const char* account = "sender@example.com";

struct http_result {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

// One request with the curl binary, as an administrator would make it.
http_result curl(const std::filesystem::path& socket, const std::string& method,
                 const std::string& path, const std::optional<std::string>& body = std::nullopt) {
  std::vector<std::string> argv = {"curl", "--silent",  "--show-error",  "--max-time",
                                   "10",   "--include", "--unix-socket", socket.string()};
  if (method != "GET") argv.insert(argv.end(), {"-X", method});
  if (body)
    argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", *body});
  argv.push_back("http://localhost" + path);
  auto r = run_command(argv);
  http_result out;
  EXPECT_EQ(r.status, 0) << "curl failed: " << r.err;
  const auto end = r.out.find("\r\n\r\n");
  if (end == std::string::npos) {
    ADD_FAILURE() << "no header block in: " << r.out;
    return out;
  }
  std::string head = r.out.substr(0, end);
  out.body = r.out.substr(end + 4);
  std::istringstream lines(head);
  std::string line;
  std::getline(lines, line);
  std::smatch m;
  if (!std::regex_match(line, m, std::regex(R"(HTTP/1\.1 (\d{3}) [^\r]*\r?)"))) {
    ADD_FAILURE() << "bad status line: " << line;
    return out;
  }
  out.status = std::stoi(m[1]);
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
  }
  return out;
}

std::set<std::string> keys(const json& object) {
  std::set<std::string> out;
  for (const auto& [k, v] : object.items()) out.insert(k);
  return out;
}

// The /health body must be exactly the contract's shape.
json strict_health(const http_result& r) {
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  auto body = json::parse(r.body);
  EXPECT_EQ(keys(body), (std::set<std::string>{"status", "version", "uptime_seconds", "queue",
                                               "accounts", "problems"}));
  EXPECT_TRUE(body["uptime_seconds"].is_number_integer());
  EXPECT_EQ(keys(body["queue"]),
            (std::set<std::string>{"depth", "deferred", "oldest_age_seconds"}));
  for (const auto& a : body["accounts"]) {
    EXPECT_EQ(keys(a), (std::set<std::string>{"address", "token_state", "access_expires_in_seconds",
                                              "last_delivery", "last_error", "sending_state",
                                              "resumes_at"}));
  }
  EXPECT_TRUE(body["problems"].is_array());
  EXPECT_EQ(body["version"], "0.1.0");
  return body;
}

// A socket that connects to the health socket and says nothing.
class silent_client {
 public:
  explicit silent_client(const std::filesystem::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
      throw std::runtime_error("connect to the health socket failed");
  }
  ~silent_client() { ::close(fd_); }
  void send(std::string_view bytes) {
    ASSERT_EQ(::write(fd_, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  // True when the server closes the connection within `timeout`.
  bool closed_within(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    char c;
    return ::read(fd_, &c, 1) <= 0;
  }

 private:
  int fd_ = -1;
};

class health : public testing::Test {
 protected:
  void SetUp() override {
    oauth_.add_account(account, "refresh-1");
    ca_file_ = pki_.write_ca(scratch_.path() / "ca.pem");
  }

  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  // The relay against the fake Gmail and token endpoint; retries are an hour
  // apart so that only /queue/retry makes a deferred message go again.
  void start() {
    gmail_ = std::make_unique<fake_gmail>(fake_gmail::mode::starttls,
                                          pki_.issue({"localhost"}, {"127.0.0.1"}));
    gmail_->set_token_validator([this](const std::string& user, const std::string& token) {
      return oauth_.token_valid(user, token);
    });
    relay_ = std::make_unique<relay_process>(
        std::string("hostname: relay.test\n") +
        "upstream:\n  host: 127.0.0.1\n  port: " + std::to_string(gmail_->port()) +
        "\n  ca_file: " + ca_file_.string() + "\nqueue:\n  retry_initial: 1h\n  retry_max: 1h\n" +
        "oauth:\n  client_id: \"" + fake_oauth::default_client_id + "\"\n  client_secret: \"" +
        fake_oauth::default_client_secret + "\"\n  token_url: " + oauth_.token_url() +
        "\n  ca_file: " + ca_file_.string() + "\naccounts:\n  - address: " + account +
        "\n    default: true\n");
    std::filesystem::create_directories(relay_->state_dir());
    std::filesystem::permissions(relay_->state_dir(), std::filesystem::perms::owner_all);
    {
      auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
      store.store_refresh_token(account, "refresh-1");
    }
    relay_->start();
  }

  std::filesystem::path socket() const { return relay_->dir() / "health.sock"; }
  std::filesystem::path control_socket() const { return relay_->dir() / "control.sock"; }
  http_result get(const std::string& path) { return curl(socket(), "GET", path); }
  http_result post(const std::string& path, const std::string& body) {
    return curl(socket(), "POST", path, body);
  }
  http_result control_get(const std::string& path) { return curl(control_socket(), "GET", path); }
  http_result control_post(const std::string& path, const std::string& body) {
    return curl(control_socket(), "POST", path, body);
  }

  std::string send(const std::string& subject) {
    smtp_client client(relay_->port());
    auto reply =
        client.send_message(account, {"a@example.org"}, "Subject: " + subject + "\r\n\r\nbody\r\n");
    EXPECT_EQ(reply.code, 250) << reply.str();
    return queued_id(reply);
  }

  // Polls GET /queue until it lists `n` messages each with at least one attempt.
  json wait_queue(std::size_t n, std::chrono::milliseconds timeout = 15s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    json body;
    while (std::chrono::steady_clock::now() < deadline) {
      body = json::parse(control_get("/queue").body);
      bool all_tried = body["messages"].size() == n;
      for (const auto& m : body["messages"]) all_tried = all_tried && m["attempts"].get<int>() > 0;
      if (all_tried) return body;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << "queue never had " << n << " tried messages: " << body.dump();
    return body;
  }

  temp_dir scratch_;
  test_pki pki_;
  fake_oauth oauth_{pki_};
  std::filesystem::path ca_file_;
  std::unique_ptr<fake_gmail> gmail_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(health, healthy_daemon_answers_200_and_metrics_parse_strictly) {
  start();
  send("measured");
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  // The queue row goes right after the 250 from Gmail; wait until health shows it.
  json body;
  for (int i = 0; i < 200; ++i) {
    body = json::parse(get("/health").body);
    if (body["queue"]["depth"] == 0 && !body["accounts"][0]["last_delivery"].is_null()) break;
    std::this_thread::sleep_for(50ms);
  }
  auto r = get("/health");
  ASSERT_EQ(r.status, 200) << r.body;
  body = strict_health(r);
  EXPECT_EQ(body["status"], "ok");
  EXPECT_EQ(body["queue"], json::parse(R"({"depth":0,"deferred":0,"oldest_age_seconds":0})"));
  ASSERT_EQ(body["accounts"].size(), 1u);
  const auto& a = body["accounts"][0];
  EXPECT_EQ(a["address"], account);
  EXPECT_EQ(a["token_state"], "valid");
  EXPECT_GT(a["access_expires_in_seconds"].get<int>(), 3000);
  EXPECT_LE(a["access_expires_in_seconds"].get<int>(), 3599);
  EXPECT_TRUE(std::regex_match(a["last_delivery"].get<std::string>(),
                               std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << a["last_delivery"];
  EXPECT_TRUE(a["last_error"].is_null());
  EXPECT_EQ(body["problems"], json::array());

  auto m = get("/metrics");
  ASSERT_EQ(m.status, 200);
  EXPECT_EQ(m.headers.at("content-type"), "text/plain; version=0.0.4");
  prom_exposition metrics;
  ASSERT_NO_THROW(metrics = parse_prometheus(m.body)) << m.body;
  const std::map<std::string, std::string> by_account{{"account", account}};
  EXPECT_EQ(metrics.value("oauth_relay_messages_received_total"), 1);
  EXPECT_EQ(metrics.value("oauth_relay_messages_delivered_total", by_account), 1);
  EXPECT_EQ(metrics.value("oauth_relay_messages_bounced_total"), 0);
  EXPECT_EQ(metrics.value("oauth_relay_delivery_attempts_total", {{"result", "delivered"}}), 1);
  EXPECT_EQ(metrics.value("oauth_relay_delivery_attempts_total", {{"result", "deferred"}}), 0);
  EXPECT_EQ(metrics.value("oauth_relay_delivery_attempts_total", {{"result", "failed"}}), 0);
  EXPECT_EQ(metrics.value("oauth_relay_queue_messages"), 0);
  EXPECT_EQ(metrics.value("oauth_relay_queue_oldest_age_seconds"), 0);
  EXPECT_EQ(
      metrics.value("oauth_relay_token_refreshes_total", {{"account", account}, {"result", "ok"}}),
      1);
  EXPECT_EQ(metrics.value("oauth_relay_token_refreshes_total",
                          {{"account", account}, {"result", "error"}}),
            0);
  EXPECT_EQ(metrics.value("oauth_relay_account_token_valid", by_account), 1);
  EXPECT_EQ(metrics.value("oauth_relay_smtp_sessions_active"), 0);
  const double upstream = metrics.value("oauth_relay_upstream_connections_active");
  EXPECT_TRUE(upstream == 0 || upstream == 1) << upstream;  // kept open while idle, then closed
  EXPECT_EQ(metrics.value("oauth_relay_delivery_duration_seconds_count"), 1);
  EXPECT_EQ(metrics.family("oauth_relay_delivery_duration_seconds")->type, "histogram");
}

TEST_F(health, revoked_token_is_503_with_the_exact_problem_and_reload_clears_it) {
  oauth_.revoke("refresh-1");
  start();
  http_result r;
  for (int i = 0; i < 200 && r.status != 503; ++i) {
    r = get("/health");
    if (r.status != 503) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(r.status, 503) << r.body;
  auto body = strict_health(r);
  EXPECT_EQ(body["status"], "degraded");
  const std::string sentence =
      "account sender@example.com needs re-authorization: Google refused the refresh token of "
      "sender@example.com (invalid_grant) 0 days after it was authorized, too soon for the 7 days "
      "of a "
      "consent screen in Testing: it was revoked (by the user at myaccount.google.com > "
      "Security, a password change, or an administrator). To fix it, run: oauth-relayctl "
      "authorize sender@example.com";
  EXPECT_EQ(body["problems"], json::array({sentence}));
  EXPECT_EQ(body["accounts"][0]["token_state"], "needs_reauth");
  EXPECT_EQ(body["accounts"][0]["last_error"], sentence);
  EXPECT_TRUE(body["accounts"][0]["access_expires_in_seconds"].is_null());
  auto metrics = parse_prometheus(get("/metrics").body);
  EXPECT_EQ(metrics.value("oauth_relay_account_token_valid", {{"account", account}}), 0);
  EXPECT_EQ(metrics.value("oauth_relay_token_refreshes_total",
                          {{"account", account}, {"result", "error"}}),
            1);

  // As `oauth-relayctl authorize` does: store the new token, then tell the daemon.
  oauth_.add_account(account, "refresh-2");
  {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    store.store_refresh_token(account, "refresh-2");
  }
  auto reload = control_post("/accounts/reload", "");
  EXPECT_EQ(reload.status, 200);
  EXPECT_EQ(json::parse(reload.body), json::parse(R"({"reloaded":true})"));
  for (int i = 0; i < 200 && r.status != 200; ++i) {
    r = get("/health");
    if (r.status != 200) std::this_thread::sleep_for(50ms);
  }
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(strict_health(r)["problems"], json::array());
}

TEST_F(health, queue_lists_a_refused_message_retry_sends_it_delete_removes_it) {
  start();
  gmail_->greet_421(1000);
  const auto first = send("retried");
  auto listed = wait_queue(1);
  ASSERT_EQ(listed["messages"].size(), 1u);
  const auto& m = listed["messages"][0];
  EXPECT_EQ(keys(m),
            (std::set<std::string>{"id", "account", "sender", "size", "age_seconds", "attempts",
                                   "next_attempt_in_seconds", "last_error", "recipients"}));
  EXPECT_EQ(m["id"], first);
  EXPECT_EQ(m["account"], account);
  EXPECT_EQ(m["sender"], account);
  {
    relay::spool_reader reader(relay_->state_dir());
    EXPECT_EQ(m["size"].get<std::uint64_t>(), reader.messages().value().at(0).size);
  }
  EXPECT_EQ(m["attempts"], 1);
  EXPECT_GE(m["age_seconds"].get<int>(), 0);
  EXPECT_GT(m["next_attempt_in_seconds"].get<int>(), 3500);
  EXPECT_LE(m["next_attempt_in_seconds"].get<int>(), 3600);
  EXPECT_NE(m["last_error"].get<std::string>().find("421"), std::string::npos) << m["last_error"];
  EXPECT_EQ(m["recipients"],
            json::parse(R"([{"address":"a@example.org","state":"pending","last_reply":""}])"));
  auto h = strict_health(get("/health"));
  EXPECT_EQ(h["queue"]["depth"], 1);
  EXPECT_EQ(h["queue"]["deferred"], 1);

  gmail_->greet_421(0);
  auto retry = control_post("/queue/retry", R"({"ids":[")" + first + R"(","0000000000000000"]})");
  EXPECT_EQ(retry.status, 200);
  EXPECT_EQ(json::parse(retry.body),
            json::parse(R"({"changed":1,"unknown":["0000000000000000"]})"));
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s)) << relay_->log();

  // The connection of the retry is still open (kept for reuse): this time
  // Gmail refuses the data.
  gmail_->fail_data_451(1);
  const auto second = send("deleted");
  listed = wait_queue(1);
  ASSERT_EQ(listed["messages"].size(), 1u);
  EXPECT_EQ(listed["messages"][0]["id"], second);
  EXPECT_EQ(listed["messages"][0]["recipients"][0]["state"], "pending");
  EXPECT_EQ(listed["messages"][0]["recipients"][0]["last_reply"].get<std::string>().substr(0, 9),
            "451 4.3.0");
  auto del = control_post("/queue/delete", R"({"ids":[")" + second + R"("]})");
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(json::parse(del.body), json::parse(R"({"deleted":1,"unknown":[]})"));
  EXPECT_EQ(json::parse(control_get("/queue").body),
            json::parse(R"({"messages":[],"next_after":null})"));
  // The page is the query's: a bad one is a 400 saying what is wrong.
  EXPECT_EQ(json::parse(control_get("/queue?limit=5&after=0").body),
            json::parse(R"({"messages":[],"next_after":null})"));
  auto bad = control_get("/queue?limit=0");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body),
            json::parse(R"({"error":"limit must be a number from 1 to 1000"})"));
  {
    relay::spool_reader reader(relay_->state_dir());
    EXPECT_TRUE(reader.messages().value().empty());
    EXPECT_EQ(reader.content(second).error().code, relay::spool_errc::not_found);
  }
  auto again = control_post("/queue/delete", R"({"ids":[")" + second + R"("]})");
  EXPECT_EQ(json::parse(again.body),
            json::parse(R"({"deleted":0,"unknown":[")" + second + R"("]})"));
  auto all = control_post("/queue/retry", R"({"all":true})");
  EXPECT_EQ(json::parse(all.body), json::parse(R"({"changed":0,"unknown":[]})"));

  // Upstream works again: the next message goes, the deleted one never does.
  send("after delete");
  ASSERT_TRUE(gmail_->wait_for_messages(2, 10s)) << relay_->log();
  auto delivered = gmail_->messages();
  ASSERT_EQ(delivered.size(), 2u);
  EXPECT_NE(delivered[0].content.find("Subject: retried\r\n"), std::string::npos);
  EXPECT_NE(delivered[1].content.find("Subject: after delete\r\n"), std::string::npos);
}

// A queue that cannot be read is not an empty queue: /health says so (503),
// /metrics has no figures to give (500), the administrator's requests fail.
TEST_F(health, an_unreadable_queue_is_503_not_an_empty_queue_and_admin_requests_fail) {
  start();
  const auto rename = [&](const char* sql) {
    db::connection db(relay_->state_dir() / "queue.db", SQLITE_OPEN_READWRITE);
    db.exec(sql);
  };
  // The table goes away behind the daemon's back, as in a damaged or foreign file.
  rename("ALTER TABLE messages RENAME TO messages_elsewhere");
  auto r = get("/health");
  ASSERT_EQ(r.status, 503) << r.body;
  auto body = strict_health(r);
  EXPECT_EQ(body["status"], "degraded");
  ASSERT_EQ(body["problems"].size(), 1u) << body.dump();
  const auto problem = body["problems"][0].get<std::string>();
  EXPECT_EQ(problem.rfind("the queue could not be read (", 0), 0u) << problem;
  EXPECT_NE(problem.find("no such table: messages"), std::string::npos) << problem;

  auto m = get("/metrics");
  EXPECT_EQ(m.status, 500);
  EXPECT_EQ(m.body.rfind("the queue could not be read: ", 0), 0u) << m.body;
  EXPECT_EQ(m.body.find('\n'), m.body.size() - 1) << m.body;  // one line
  for (const auto& answer : {control_get("/queue"), control_post("/queue/retry", R"({"all":true})"),
                             control_post("/queue/delete", R"({"ids":["0123456789abcdef"]})")}) {
    EXPECT_EQ(answer.status, 500) << answer.body;
    const auto error = json::parse(answer.body)["error"].get<std::string>();
    EXPECT_EQ(error.rfind("the spool failed: ", 0), 0u) << error;
    EXPECT_NE(error.find("no such table: messages"), std::string::npos) << error;
  }

  // Repaired, the same daemon answers as before.
  rename("ALTER TABLE messages_elsewhere RENAME TO messages");
  r = get("/health");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(strict_health(r)["queue"]["depth"], 0);
}

TEST_F(health, three_failed_attempts_in_a_row_degrade_until_a_delivery_succeeds) {
  start();
  // Refused after the content: the connection worked, the attempt did not.
  // (Gmail's 421 4.7.0 "try again later" would hold the account instead.)
  gmail_->fail_data_451(1000);
  const auto id = send("refused thrice");
  for (int attempt = 1; attempt <= 3; ++attempt) {
    if (attempt > 1) {
      ASSERT_EQ(control_post("/queue/retry", R"({"all":true})").status, 200);
    }
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto listed = json::parse(control_get("/queue").body);
      if (listed["messages"].size() == 1 && listed["messages"][0]["attempts"] == attempt) break;
      std::this_thread::sleep_for(50ms);
    }
    auto r = get("/health");
    EXPECT_EQ(r.status, attempt < 3 ? 200 : 503) << "after attempt " << attempt << ": " << r.body;
  }
  auto body = strict_health(get("/health"));
  EXPECT_EQ(body["problems"],
            json::array({"account sender@example.com: the last 3 delivery attempts failed "
                         "temporarily (content refused: 451 4.3.0 Mail server temporarily "
                         "rejected message. fake - gsmtp): run \"oauth-relayctl test "
                         "sender@example.com\" to see what fails"}));
  EXPECT_EQ(body["accounts"][0]["last_error"],
            "content refused: 451 4.3.0 Mail server temporarily rejected message. fake - gsmtp");
  auto metrics = parse_prometheus(get("/metrics").body);
  EXPECT_EQ(metrics.value("oauth_relay_delivery_attempts_total", {{"result", "deferred"}}), 3);

  gmail_->fail_data_451(0);
  ASSERT_EQ(control_post("/queue/retry", R"({"ids":[")" + id + R"("]})").status, 200);
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  http_result r;
  for (int i = 0; i < 200 && r.status != 200; ++i) {
    r = get("/health");
    if (r.status != 200) std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(health, a_message_deleted_during_its_attempt_goes_once_the_attempt_is_recorded) {
  start();
  // A slow Gmail that will refuse the data: the attempt is still running when
  // the administrator deletes the message.
  gmail_->set_reply_delay(300ms);
  gmail_->fail_data_451(1);
  const auto id = send("deleted in flight");
  ASSERT_TRUE(relay_->wait_for_log("event=upstream_connected"));
  auto del = control_post("/queue/delete", R"({"ids":[")" + id + R"("]})");
  EXPECT_EQ(del.status, 200);
  EXPECT_EQ(json::parse(del.body), json::parse(R"({"deleted":1,"unknown":[]})"));
  ASSERT_TRUE(
      relay_->wait_for_log("event=message_deleted id=" + id + " after=\"its delivery attempt\""))
      << relay_->log();
  EXPECT_EQ(json::parse(control_get("/queue").body),
            json::parse(R"({"messages":[],"next_after":null})"));
  relay::spool_reader reader(relay_->state_dir());
  EXPECT_TRUE(reader.messages().value().empty());
  EXPECT_EQ(gmail_->messages().size(), 0u);
  // The attempt itself was recorded first, never half-way.
  EXPECT_NE(relay_->log().find("event=delivery_deferred id=" + id), std::string::npos);
}

TEST_F(health, a_silent_client_does_not_hold_up_others_and_is_cut_off) {
  relay_ = std::make_unique<relay_process>();
  relay_->start();
  silent_client silent(socket());
  silent_client half(socket());
  half.send("GET /health HTTP/1.1\r\nHost: x");  // never finishes its headers
  for (int i = 0; i < 3; ++i) {
    auto r = get("/health");
    EXPECT_EQ(r.status, 503);  // the harness's account has no token: degraded, but answered
  }
  // Each gets the request deadline (5 s), then the daemon hangs up.
  EXPECT_TRUE(silent.closed_within(15s));
  EXPECT_TRUE(half.closed_within(15s));
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

TEST_F(health, sockets_are_0660_and_0600_replace_a_stale_file_and_are_removed_on_stop) {
  relay_ = std::make_unique<relay_process>();
  {
    // A socket file left by a crashed daemon: bound, then abandoned.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, socket().c_str(), sizeof address.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);
  }
  relay_->start();
  EXPECT_NE(relay_->log().find("event=health_socket_stale_removed"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::lstat(socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660u);
  ASSERT_EQ(::lstat(control_socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(get("/health").status, 503);

  // A second daemon must not steal a socket that is being served.
  relay_process second;
  std::string text;
  {
    std::ifstream in(second.config_path());
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  const auto line = text.find("health_socket: ");
  text.replace(line, text.find('\n', line) - line, "health_socket: " + socket().string());
  std::ofstream(second.config_path(), std::ios::trunc) << text;
  auto refused = run_command({relayd_path(), "-c", second.config_path().string()}, "", 20s);
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find("another process serves it"), std::string::npos) << refused.err;
  EXPECT_EQ(get("/health").status, 503);  // still ours

  EXPECT_EQ(relay_->stop(SIGTERM), 0);
  EXPECT_FALSE(std::filesystem::exists(socket()));
  EXPECT_FALSE(std::filesystem::exists(control_socket()));
}

TEST_F(health, wrong_paths_methods_and_bodies_get_404_405_400_413) {
  relay_ = std::make_unique<relay_process>();
  relay_->start();
  auto missing = get("/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(json::parse(missing.body), json::parse(R"({"error":"not found"})"));
  auto wrong = post("/health", "{}");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(wrong.headers["allow"], "GET");
  // The queue is not the health socket's: not even its paths are known there.
  EXPECT_EQ(get("/queue").status, 404);
  EXPECT_EQ(post("/queue/delete", R"({"ids":["0123456789abcdef"]})").status, 404);
  EXPECT_EQ(get("/health?verbose=1").status, 503);  // a query string is ignored

  auto wrong_get = control_get("/queue/delete");
  EXPECT_EQ(wrong_get.status, 405);
  EXPECT_EQ(wrong_get.headers["allow"], "POST");
  EXPECT_EQ(control_get("/health").status, 404);
  EXPECT_EQ(control_get("/metrics").status, 404);
  auto bad = control_post("/queue/retry", "retry everything please");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"],
            "the body is not a JSON object: expected {\"ids\":[\"ID\",...]} or {\"all\":true}");
  auto bad_delete = control_post("/queue/delete", R"({"all":true})");
  EXPECT_EQ(bad_delete.status, 400);
  auto huge =
      control_post("/queue/delete", R"({"ids":[")" + std::string(70 * 1024, 'a') + R"("]})");
  EXPECT_EQ(huge.status, 413);
  auto bad_import = control_post("/accounts/import", R"({"address":"a@example.com"})");
  EXPECT_EQ(bad_import.status, 400);
  EXPECT_EQ(json::parse(bad_import.body)["error"],
            "expected {\"address\":\"...\",\"refresh_token\":\"...\"} with optionally "
            "\"access_token\" and \"access_expires_at\"");
  auto spaced = control_post("/accounts/import",
                             R"({"address":"a@example.com","refresh_token":"1// two words"})");
  EXPECT_EQ(spaced.status, 400);
  EXPECT_EQ(relay_->log().find("event=account_token_stored"), std::string::npos);
}

// oauth-relayctl run as root: the queue commands and a token import go to
// the running daemon through the control socket; the daemon stores the token
// itself and says so in its log.
TEST_F(health, oauth_relayctl_works_the_queue_and_imports_through_the_control_socket) {
  start();
  gmail_->greet_421(1000);
  const auto first = send("kept back");
  wait_queue(1);
  const auto ctl = [this](std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {"-c", relay_->config_path().string()});
    return run_ctl(args, input);
  };
  auto r = ctl({"queue", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["messages"][0]["id"], first);

  gmail_->greet_421(0);
  r = ctl({"queue", "retry", first});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1 message due now\n");
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s)) << relay_->log();

  gmail_->fail_data_451(1);
  const auto second = send("deleted by oauth-relayctl");
  wait_queue(1);
  r = ctl({"queue", "delete", second});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "1 message deleted\n");
  EXPECT_EQ(json::parse(control_get("/queue").body),
            json::parse(R"({"messages":[],"next_after":null})"));

  oauth_.add_account(account, "refresh-2");
  r = ctl({"import", account, "--refresh-token-file", "-", "--no-verify"}, "refresh-2\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(split_lines(r.out),
            (std::vector<std::string>{
                "imported a refresh token for sender@example.com (not checked)",
                "oauth-relayd stored the token and reloaded the account; mail waiting for "
                "sender@example.com goes out now"}));
  EXPECT_TRUE(relay_->wait_for_log(
      "event=account_token_stored account=sender@example.com generation=2 via=control_socket "
      "configured=yes"))
      << relay_->log();
  EXPECT_TRUE(relay_->wait_for_log("event=token_stored account=sender@example.com generation=2"));
  EXPECT_EQ(relay_->log().find("refresh-2"), std::string::npos);  // never the token itself
  {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    EXPECT_EQ(std::string(store.get(account)->refresh_token), "refresh-2");
  }
  r = ctl({"accounts", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const auto listed = json::parse(r.out)["accounts"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0]["address"], account);
  EXPECT_EQ(listed[0]["configured"], true);
}

}  // namespace
}  // namespace oauth_relay::test_support
