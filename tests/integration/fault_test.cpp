// Faults around a running oauth-relayd: Gmail away or refusing, the token
// endpoint failing, an upstream slower than the timeouts, storage that stops
// taking writes, and a damaged or missing database at start. Each checks that
// nothing accepted is lost and that the backlog drains once the fault ends.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "integration/support/google_fakes.hpp"
#include "integration/support/mail_load.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Short backoff so a fault that ends is noticed within seconds.
constexpr const char* fast_retries = "queue:\n  retry_initial: 1s\n  retry_max: 2s\n";

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class fault : public testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure() || !relay_) return;
    const auto log = relay_->log();
    std::cerr << "---- oauth-relayd log (tail)\n"
              << log.substr(log.size() > 30000 ? log.size() - 30000 : 0);
  }

  void start(const std::string& extra = "", const std::string& upstream_extra = "",
             std::map<std::string, std::string> environment = {}) {
    relay_ = std::make_unique<relay_process>(google_.config(fast_retries + extra, upstream_extra));
    google_.store_token(relay_->state_dir(), relay_->key_file());
    relay_->start(std::move(environment));
  }

  // One message on its own connection; returns the reply to the final dot.
  client_reply send(const std::string& tag, std::size_t size = 2048) {
    const auto message = make_test_message(tag, size);
    sent_[tag] = size;
    smtp_client client(relay_->port());
    return client.send_message(google_fakes::account, {"rcpt@example.org"}, message.stuffed());
  }

  // Sends `count` messages PREFIX-0 … and asserts each got its 250.
  std::vector<std::string> send_accepted(const std::string& prefix, int count,
                                         std::size_t size = 2048) {
    std::vector<std::string> tags;
    for (int i = 0; i < count; ++i) {
      const std::string tag = prefix + "-" + std::to_string(i);
      const auto reply = send(tag, size);
      EXPECT_EQ(reply.code, 250) << tag << ": " << reply.str();
      if (reply.code == 250) tags.push_back(tag);
    }
    return tags;
  }

  std::size_t queued() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value().size();
  }

  bool wait_drained(std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (queued() == 0) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  // How often each tag arrived; every copy must be the exact bytes sent.
  std::map<std::string, int> arrivals() {
    std::map<std::string, int> seen;
    for (const auto& m : google_.messages()) {
      const auto tag = tag_of(m.content);
      ++seen[tag];
      const auto sent = sent_.find(tag);
      if (sent == sent_.end()) {
        ADD_FAILURE() << "unexpected message arrived: " << m.content.substr(0, 300);
        continue;
      }
      EXPECT_EQ(without_received(m.content), make_test_message(tag, sent->second).content)
          << tag << " arrived altered";
    }
    return seen;
  }

  // Every tag in `tags` arrived exactly once and nothing else arrived.
  void expect_each_once(const std::vector<std::string>& tags) {
    auto seen = arrivals();
    for (const auto& tag : tags) {
      EXPECT_EQ(seen[tag], 1) << tag;
      seen.erase(tag);
    }
    for (const auto& [tag, n] : seen) ADD_FAILURE() << tag << " arrived " << n << " times";
  }

  temp_dir scratch_;
  google_fakes google_;
  std::unique_ptr<relay_process> relay_;
  std::map<std::string, std::size_t> sent_;  // tag -> size asked of make_test_message
};

TEST_F(fault, gmail_down_under_load_then_refusing_then_each_message_delivered_once) {
  start();
  auto tags = send_accepted("before", 5);
  ASSERT_TRUE(google_.gmail().wait_for_messages(5, 10s));

  // Gmail goes away (connections refused) while applications keep sending.
  google_.stop_gmail();
  {
    mail_load_options options;
    options.prefix = "down";
    options.sessions = 3;
    options.target = 60;
    options.size = 4096;
    mail_load load(options, [this] { return relay_->port(); });
    ASSERT_TRUE(load.wait(60s));
    load.stop();
    for (const auto& [tag, record] : load.records()) {
      EXPECT_EQ(record.result, mail_load::outcome::accepted) << tag << " " << record.code;
      sent_[tag] = record.size;
      tags.push_back(tag);
    }
  }
  ASSERT_TRUE(relay_->wait_for_log("event=upstream_unreachable", 10s));
  EXPECT_EQ(google_.message_count(), 5u);
  // It comes back greeting the first connections with 421, as an overloaded Gmail does.
  google_.start_gmail();
  google_.gmail().greet_421(6);
  ASSERT_TRUE(wait_drained(60s));
  expect_each_once(tags);
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

// The token endpoint answers 503 from the start; mail is accepted and held.
// The relay retries the endpoint 30 s after a failure (token_manager's
// retry_initial, not a config key), so this quick test ends the outage and
// restarts the relay; long_token_endpoint_503_then_recovers waits instead.
TEST_F(fault, token_endpoint_503_holds_mail_without_loss) {
  google_.oauth().fail_with_503(true);
  start();
  const auto tags = send_accepted("t503", 5);
  ASSERT_TRUE(relay_->wait_for_log("event=token_refresh_failed", 10s));
  EXPECT_NE(relay_->log().find("503"), std::string::npos) << relay_->log();
  EXPECT_EQ(google_.message_count(), 0u);
  EXPECT_EQ(google_.gmail().auth_attempts(), 0u);  // no token, no login attempt
  EXPECT_EQ(queued(), 5u);
  google_.oauth().fail_with_503(false);
  ASSERT_EQ(relay_->stop(SIGTERM), 0);
  relay_->start();
  ASSERT_TRUE(wait_drained(30s));
  expect_each_once(tags);
}

TEST_F(fault, long_token_endpoint_503_then_recovers) {
  if (!long_tests_enabled()) GTEST_SKIP() << "set OAUTH_RELAY_LONG_TESTS=1";
  google_.oauth().set_expires_in(10s);
  start();
  auto tags = send_accepted("ok", 3);
  ASSERT_TRUE(google_.gmail().wait_for_messages(3, 10s));
  // The endpoint fails from now on; the access token runs out in 10 s.
  google_.oauth().fail_with_503(true);
  const auto outage = std::chrono::steady_clock::now();
  ASSERT_TRUE(relay_->wait_for_log("event=token_refresh_failed", 20s));
  std::this_thread::sleep_for(6s);  // the last access token has expired now
  const auto held = send_accepted("t503", 5);
  tags.insert(tags.end(), held.begin(), held.end());
  ASSERT_TRUE(relay_->wait_for_log("event=delivery_deferred", 20s) ||
              relay_->wait_for_log("event=account_mail_waiting", 1s));
  EXPECT_EQ(google_.message_count(), 3u);
  google_.oauth().fail_with_503(false);
  const auto recovered_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_drained(120s));
  const auto now = std::chrono::steady_clock::now();
  std::cout << "token endpoint outage: "
            << std::chrono::duration<double>(recovered_at - outage).count() << " s; mail out "
            << std::chrono::duration<double>(now - recovered_at).count()
            << " s after the endpoint answered again\n";
  expect_each_once(tags);
}

// A slow Gmail inside the (fixed, 60 s) upstream timeout still gets everything once.
TEST_F(fault, slow_upstream_within_the_timeout_delivers_each_once) {
  google_.gmail().set_reply_delay(300ms);
  start();
  const auto tags = send_accepted("slow", 4);
  ASSERT_TRUE(wait_drained(60s));
  expect_each_once(tags);
}

// The upstream timeout is fixed at 60 s (relay/upstream_client.hpp,
// default_upstream_timeout; no config key), so this takes over a minute.
TEST_F(fault, long_upstream_slower_than_the_timeout_defers_then_delivers) {
  if (!long_tests_enabled()) GTEST_SKIP() << "set OAUTH_RELAY_LONG_TESTS=1";
  google_.gmail().set_reply_delay(70s);
  start();
  const auto tags = send_accepted("stuck", 2);
  ASSERT_TRUE(relay_->wait_for_log("timed out after", 75s)) << relay_->log();
  ASSERT_TRUE(relay_->wait_for_log("event=delivery_deferred", 5s));
  EXPECT_EQ(google_.message_count(), 0u);
  EXPECT_EQ(queued(), 2u);
  google_.gmail().set_reply_delay(0ms);
  ASSERT_TRUE(wait_drained(30s));
  expect_each_once(tags);
}

// Storage stops taking writes at run time (the state directory's filesystem
// turned read-only, or failing with I/O errors) while mail arrives and queued
// mail is being delivered: nothing gets a 250, the daemon keeps running, and
// once writes work again it accepts and delivers as before.
class storage_fault : public fault, public testing::WithParamInterface<const char*> {};

TEST_P(storage_fault, answers_4xx_keeps_running_and_recovers) {
  const fs::path flag = scratch_.path() / "fail-writes";
  std::string asan = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
  // The injector is preloaded ahead of the sanitizer runtime in the ASan build.
  asan += std::string(asan.empty() ? "" : ":") + "verify_asan_link_order=0";
  relay_ = std::make_unique<relay_process>(google_.config(fast_retries));
  google_.store_token(relay_->state_dir(), relay_->key_file());
  relay_->start({{"LD_PRELOAD", OAUTH_RELAY_FAIL_WRITES_LIBRARY},
                 {"OAUTH_RELAY_FAIL_WRITES", flag.string()},
                 {"OAUTH_RELAY_FAIL_WRITES_UNDER", relay_->state_dir().string()},
                 {"ASAN_OPTIONS", asan}});
  const auto tags = send_accepted("before", 2);
  ASSERT_TRUE(google_.gmail().wait_for_messages(2, 10s));

  // Mail queued while Gmail is away is delivered while storage fails: the
  // relay cannot record the deliveries, so it may send those again later.
  google_.stop_gmail();
  const auto waiting = send_accepted("waiting", 3);
  std::ofstream(flag) << GetParam();
  google_.start_gmail();

  const int pid = relay_->pid();
  for (int i = 0; i < 3; ++i) {
    for (std::size_t size : {std::size_t{2048}, std::size_t{600 * 1024}}) {
      const std::string tag = "failing-" + std::to_string(i) + "-" + std::to_string(size);
      const auto reply = send(tag, size);
      EXPECT_TRUE(reply.code == 451 || reply.code == 452) << tag << ": " << reply.str();
    }
  }
  // Still the same process (not exited, not even a zombie), still serving.
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, WNOHANG), 0) << "oauth-relayd exited";
  {
    smtp_client client(relay_->port());
    EXPECT_EQ(client.read_reply().code, 220);
    EXPECT_EQ(client.command("NOOP").code, 250);
  }

  // A delivery made while storage failed could not be recorded: it stays queued.
  EXPECT_TRUE(relay_->wait_for_log("event=delivery_record_failed", 15s));
  fs::remove(flag);
  const auto after = send_accepted("after", 2);
  const auto after_big = send_accepted("after-big", 1, 600 * 1024);
  ASSERT_TRUE(wait_drained(60s));
  auto seen = arrivals();
  for (const auto& group : {tags, waiting, after, after_big}) {
    for (const auto& tag : group) EXPECT_GE(seen[tag], 1) << tag << " got a 250 and was lost";
  }
  for (const auto& tag : tags) EXPECT_EQ(seen[tag], 1) << tag;
  for (const auto& tag : after) EXPECT_EQ(seen[tag], 1) << tag;
  for (const auto& [tag, n] : seen) {
    EXPECT_EQ(tag.rfind("failing-", 0), std::string::npos) << tag << " was refused and still sent";
    if (n > 1) std::cout << tag << " arrived " << n << " times (delivered while storage failed)\n";
  }
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

INSTANTIATE_TEST_SUITE_P(fault, storage_fault, testing::Values("EROFS", "EIO"),
                         [](const testing::TestParamInfo<const char*>& info) {
                           return std::string(info.param);
                         });

// The spool directory cannot be synced (its journal failing) while file data
// still can: a message large enough for a content file gets 451 (its name
// might not survive a crash, so no row may point at it), one kept in the
// database still gets its 250, and once syncs work again both kinds go.
TEST_F(fault, a_failed_directory_sync_refuses_the_messages_that_needed_it) {
  const fs::path flag = scratch_.path() / "fail-writes";
  std::string asan = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
  asan += std::string(asan.empty() ? "" : ":") + "verify_asan_link_order=0";
  relay_ = std::make_unique<relay_process>(google_.config(fast_retries));
  google_.store_token(relay_->state_dir(), relay_->key_file());
  relay_->start({{"LD_PRELOAD", OAUTH_RELAY_FAIL_WRITES_LIBRARY},
                 {"OAUTH_RELAY_FAIL_WRITES", flag.string()},
                 {"OAUTH_RELAY_FAIL_WRITES_UNDER", relay_->state_dir().string()},
                 {"ASAN_OPTIONS", asan}});
  std::ofstream(flag) << "EIO-DIRSYNC";
  const auto big = send("big-refused", 600 * 1024);
  EXPECT_EQ(big.code, 451) << big.str();
  EXPECT_TRUE(relay_->wait_for_log("cannot sync the directory", 10s));
  const auto small = send_accepted("small", 1);
  ASSERT_TRUE(wait_drained(30s));
  // The refused message's file went with it.
  EXPECT_TRUE(fs::is_empty(relay_->state_dir() / "spool"));

  fs::remove(flag);
  const auto after = send_accepted("after-big", 1, 600 * 1024);
  ASSERT_TRUE(wait_drained(30s));
  auto seen = arrivals();
  EXPECT_EQ(seen["small-0"], 1);
  EXPECT_EQ(seen["after-big-0"], 1);
  EXPECT_EQ(seen.count("big-refused"), 0u);
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

// A state directory on a filesystem that is read-only when the daemon starts:
// a clear refusal, not a daemon that answers every message with 451.
TEST_F(fault, read_only_state_dir_at_start_is_refused) {
  relay_process relay;
  fs::create_directories(relay.state_dir());
  if (::mount("tmpfs", relay.state_dir().c_str(), "tmpfs", 0, "size=4m,mode=0700") != 0) {
    GTEST_SKIP() << "needs permission to mount a small tmpfs (run as root)";
  }
  struct unmount {
    fs::path at;
    ~unmount() { ::umount2(at.c_str(), MNT_DETACH); }
  } guard{relay.state_dir()};
  relay.start();
  ASSERT_EQ(relay.stop(SIGTERM), 0);
  ASSERT_EQ(::mount(nullptr, relay.state_dir().c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr),
            0);
  const auto before = read_bytes(relay.state_dir() / "queue.db");
  auto result = run_command({relayd_path(), "-c", relay.config_path().string()}, "", 20s);
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_NE(result.err.find("Read-only file system"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("queue.db"), std::string::npos) << result.err;
  EXPECT_EQ(read_bytes(relay.state_dir() / "queue.db"), before);
}

// Starting on a database that is not one, or is damaged: exit 1 with the
// file and what to do, and the file left exactly as it was for recovery.
TEST_F(fault, garbage_database_is_refused_and_left_untouched) {
  relay_process relay;
  fs::create_directories(relay.state_dir());
  fs::permissions(relay.state_dir(), fs::perms::owner_all);
  const auto db = relay.state_dir() / "queue.db";
  std::string garbage;
  while (garbage.size() < 8192) garbage += "this is not an SQLite database\n";
  std::ofstream(db, std::ios::binary) << garbage;
  fs::permissions(db, fs::perms::owner_read | fs::perms::owner_write);
  auto result = run_command({relayd_path(), "-c", relay.config_path().string()}, "", 20s);
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_NE(result.err.find("event=spool_unusable"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(db.string()), std::string::npos) << result.err;
  EXPECT_EQ(read_bytes(db), garbage);
}

TEST_F(fault, damaged_database_is_refused_and_left_untouched) {
  // A real queue with mail in it: Gmail is away, so it stays queued.
  google_.stop_gmail();
  start();
  send_accepted("queued", 40, 3000);
  ASSERT_EQ(relay_->stop(SIGTERM), 0);
  const auto db = relay_->state_dir() / "queue.db";
  std::string bytes = read_bytes(db);
  ASSERT_GE(bytes.size(), 3u * 4096) << "expected a database of several pages";
  // Page 2's b-tree header becomes nonsense (the page size is 4096).
  for (std::size_t i = 4096; i < 4096 + 12; ++i) bytes[i] = '\xff';
  std::ofstream(db, std::ios::binary | std::ios::trunc) << bytes;
  auto result = run_command({relayd_path(), "-c", relay_->config_path().string()}, "", 20s);
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_NE(result.err.find("the database is damaged"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(".recover"), std::string::npos) << result.err;
  EXPECT_EQ(read_bytes(db), bytes);
}

// No state at all: the directory and a fresh database are created, private.
TEST_F(fault, missing_database_is_created_private) {
  relay_process relay;
  ASSERT_FALSE(fs::exists(relay.state_dir()));
  relay.start();
  smtp_client client(relay.port());
  EXPECT_EQ(
      client.send_message("sender@example.com", {"a@example.org"}, "Subject: x\r\n\r\nx\r\n").code,
      250);
  const auto mode = [](const fs::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode(relay.state_dir()), 0700u);
  EXPECT_EQ(mode(relay.state_dir() / "queue.db"), 0600u);
  EXPECT_EQ(mode(relay.state_dir() / "spool"), 0700u);
  for (const auto& entry : fs::recursive_directory_iterator(relay.state_dir())) {
    EXPECT_EQ(mode(entry.path()) & 077, 0u) << entry.path() << " is readable by others";
  }
  EXPECT_EQ(relay.stop(SIGTERM), 0);
}

}  // namespace
}  // namespace oauth_relay::test_support
