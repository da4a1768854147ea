// Secrets at rest, with the real programs: a token stored by oauth-relayctl is
// in no file of the state directory, a restart with the same key delivers, a
// wrong or missing key stops the start and changes nothing, the first start
// makes the key, the running daemon cannot dump core, and the client secret
// comes from the systemd credential.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "auth/token_store.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/google_fakes.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using testing::HasSubstr;
using testing::IsEmpty;
namespace fs = std::filesystem;

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every file under `dir` whose bytes contain `text`.
std::vector<std::string> files_containing(const fs::path& dir, const std::string& text) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file() && read_bytes(entry.path()).find(text) != std::string::npos) {
      found.push_back(entry.path().string());
    }
  }
  return found;
}

class secrets : public testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  void make_relay(const std::string& body) {
    relay_ = std::make_unique<relay_process>(body);
    // Every access token Gmail is shown, so the test can look for it on disk.
    google_.gmail().set_token_validator([this](const std::string& user, const std::string& token) {
      std::lock_guard lock(mutex_);
      access_tokens_.push_back(token);
      return google_.oauth().token_valid(user, token);
    });
  }

  // One message, accepted and then delivered (the count Gmail has reached).
  void deliver(const std::string& tag) {
    const auto message = make_test_message(tag, 1000);
    smtp_client client(relay_->port());
    const auto reply =
        client.send_message(google_fakes::account, {"rcpt@example.org"}, message.stuffed());
    ASSERT_EQ(reply.code, 250) << reply.str();
    ++sent_;
    ASSERT_TRUE(google_.gmail().wait_for_messages(sent_, 20s)) << tag << " was not delivered";
  }

  std::vector<std::string> access_tokens() {
    std::lock_guard lock(mutex_);
    return access_tokens_;
  }

  command_result start_directly() {
    return run_command({relayd_path(), "-c", relay_->config_path().string()}, "", 20s);
  }

  google_fakes google_;
  std::unique_ptr<relay_process> relay_;
  std::mutex mutex_;
  std::vector<std::string> access_tokens_;
  std::size_t sent_ = 0;
};

TEST_F(secrets, an_imported_token_is_in_no_state_file_and_a_restart_with_the_key_delivers) {
  make_relay(google_.config());
  relay_->start();
  const auto imported = run_ctl({"-c", relay_->config_path().string(), "import",
                                 google_fakes::account, "--refresh-token-file", "-"},
                                google_fakes::refresh_token);
  ASSERT_EQ(imported.status, 0) << imported.err;
  deliver("before-restart");
  ASSERT_EQ(relay_->stop(SIGTERM), 0);
  relay_->start();
  deliver("after-restart");
  EXPECT_EQ(google_.oauth().refreshes_served(), 1u)
      << "the restarted daemon should use the stored access token";

  const auto tokens = access_tokens();
  ASSERT_FALSE(tokens.empty());
  EXPECT_THAT(files_containing(relay_->state_dir(), google_fakes::refresh_token), IsEmpty());
  for (const auto& token : tokens) {
    EXPECT_THAT(files_containing(relay_->state_dir(), token), IsEmpty()) << token;
  }
  // The search finds what is there: the account's address is in the database.
  EXPECT_THAT(files_containing(relay_->state_dir(), google_fakes::account),
              testing::Not(IsEmpty()));
  EXPECT_EQ(relay_->log().find(google_fakes::refresh_token), std::string::npos);
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

TEST_F(secrets, a_wrong_key_stops_the_start_and_changes_nothing) {
  make_relay(google_.config());
  google_.store_token(relay_->state_dir(), relay_->key_file());
  relay_->start();
  deliver("with-the-right-key");
  ASSERT_EQ(relay_->stop(SIGTERM), 0);
  const auto right_key = read_bytes(relay_->key_file());
  const auto db = relay_->state_dir() / "queue.db";
  const auto before = read_bytes(db);

  write_token_key(relay_->dir());  // another random key in its place
  const auto result = start_directly();
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr("<3>event=token_key_unusable error=\"the token key file " +
                                    relay_->key_file().string() + " is not the key the tokens in " +
                                    db.string() + " were sealed with\""));
  EXPECT_THAT(result.err,
              HasSubstr("hint=\"put back the key they were sealed with (from your backup)"));
  EXPECT_EQ(read_bytes(db), before);

  // The right key back: the account is as it was, never needs_reauth.
  fs::remove(relay_->key_file());
  std::ofstream(relay_->key_file()) << right_key;
  fs::permissions(relay_->key_file(), fs::perms::owner_read);
  {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    const auto row = store.get(google_fakes::account);
    ASSERT_TRUE(row);
    EXPECT_EQ(row->state, auth::token_state::valid);
    EXPECT_EQ(row->refresh_token, google_fakes::refresh_token);
  }
  relay_->start();
  deliver("with-the-key-back");
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

TEST_F(secrets, a_lost_key_file_stops_the_start_and_is_not_replaced) {
  make_relay(google_.config());
  google_.store_token(relay_->state_dir(), relay_->key_file());
  fs::remove(relay_->key_file());
  const auto result = start_directly();
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_THAT(result.err,
              HasSubstr("<3>event=token_key_unusable error=\"the token key file " +
                        relay_->key_file().string() + " does not exist\" hint=\"restore " +
                        relay_->key_file().string() + " from your backup"));
  EXPECT_FALSE(fs::exists(relay_->key_file()));
}

TEST_F(secrets, a_key_file_others_can_read_stops_the_start) {
  make_relay(google_.config());
  fs::permissions(relay_->key_file(), fs::perms::owner_read | fs::perms::group_read);
  const auto result = start_directly();
  EXPECT_EQ(result.status, 1) << result.err;
  EXPECT_THAT(result.err, HasSubstr("error=\"the token key file " + relay_->key_file().string() +
                                    " may be read or written by others than its owner (mode "
                                    "0440)\" hint=\"chmod 0400 " +
                                    relay_->key_file().string()));
  EXPECT_FALSE(fs::exists(relay_->state_dir() / "queue.db"));
}

TEST_F(secrets, the_first_start_makes_a_private_key) {
  make_relay(google_.config());
  fs::remove(relay_->key_file());
  relay_->start();
  EXPECT_THAT(relay_->log(),
              HasSubstr("<5>event=token_key_created file=" + relay_->key_file().string()));
  struct stat st {};
  ASSERT_EQ(::stat(relay_->key_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  EXPECT_EQ(read_bytes(relay_->key_file()).size(), 45u);
  // oauth-relayctl uses the key the daemon made.
  const auto imported = run_ctl({"-c", relay_->config_path().string(), "import",
                                 google_fakes::account, "--refresh-token-file", "-", "--no-verify"},
                                google_fakes::refresh_token);
  ASSERT_EQ(imported.status, 0) << imported.err;
  deliver("with-a-made-key");
  ASSERT_EQ(relay_->stop(SIGTERM), 0);
  const auto key = read_bytes(relay_->key_file());
  relay_->start();
  deliver("after-restart");
  EXPECT_EQ(read_bytes(relay_->key_file()), key);
  const auto log = relay_->log();
  EXPECT_EQ(log.find("event=token_key_created"), log.rfind("event=token_key_created"));
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

// The owner of /proc/PID/fd: the process's user, or root when the process is
// not dumpable (proc(5), PR_SET_DUMPABLE).
uid_t proc_fd_owner(pid_t pid) {
  struct stat st {};
  if (::stat(("/proc/" + std::to_string(pid) + "/fd").c_str(), &st) != 0) return 12345;
  return st.st_uid;
}

TEST_F(secrets, the_running_daemon_cannot_dump_core) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the daemon as another user";
  constexpr uid_t nobody = 65534;
  make_relay(minimal_config_body());
  for (const auto& entry : fs::recursive_directory_iterator(relay_->dir())) {
    ::lchown(entry.path().c_str(), nobody, nobody);
  }
  ::chown(relay_->dir().c_str(), nobody, nobody);
  // A program of that user that does not turn dumping off: its /proc/PID/fd
  // is its own. (Changing the user makes a process undumpable until its next
  // exec, so the owner is read once the exec closed the close-on-exec pipe.)
  int exec_done[2];
  ASSERT_EQ(::pipe2(exec_done, O_CLOEXEC), 0);
  const pid_t control = ::fork();
  if (control == 0) {
    ::close(exec_done[0]);
    if (::setgid(nobody) == 0 && ::setuid(nobody) == 0) {
      ::execl("/bin/sleep", "sleep", "30", static_cast<char*>(nullptr));
    }
    ::_exit(1);
  }
  ::close(exec_done[1]);
  char ignored;
  while (::read(exec_done[0], &ignored, 1) > 0) {
  }
  ::close(exec_done[0]);
  const uid_t control_owner = proc_fd_owner(control);
  ::kill(control, SIGKILL);
  ::waitpid(control, nullptr, 0);
  ASSERT_EQ(control_owner, nobody);

  relay_->run_as(nobody, nobody);
  relay_->start();
  EXPECT_EQ(proc_fd_owner(relay_->pid()), 0u) << "oauth-relayd is dumpable";
  const auto limits = read_bytes("/proc/" + std::to_string(relay_->pid()) + "/limits");
  EXPECT_THAT(limits, testing::ContainsRegex("\nMax core file size +0 +0 +bytes"));
  EXPECT_THAT(read_bytes("/proc/" + std::to_string(relay_->pid()) + "/status"),
              testing::ContainsRegex("\nUid:\t65534\t"));
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

// The body without its client_secret line.
std::string without_secret(std::string body) {
  const auto at = body.find("  client_secret: ");
  body.erase(at, body.find('\n', at) + 1 - at);
  return body;
}

TEST_F(secrets, the_client_secret_comes_from_the_systemd_credential) {
  make_relay(without_secret(google_.config()));
  const auto credentials = relay_->dir() / "credentials";
  fs::create_directories(credentials);
  std::ofstream(credentials / "client-secret") << fakes::fake_oauth::default_client_secret << "\n";

  // Outside the service there is no secret, and --check-config says where one may come from.
  const auto checked =
      run_command({relayd_path(), "-c", relay_->config_path().string(), "--check-config"});
  EXPECT_EQ(checked.status, 1);
  EXPECT_THAT(checked.err, HasSubstr("oauth: missing required key \"client_secret\" or "
                                     "\"client_secret_file\" (or the systemd credential "
                                     "\"client-secret\")"));

  google_.store_token(relay_->state_dir(), relay_->key_file());
  relay_->start({{"CREDENTIALS_DIRECTORY", credentials.string()}});
  deliver("secret-from-the-credential");
  EXPECT_EQ(google_.oauth().last_token_request().at("client_secret"),
            fakes::fake_oauth::default_client_secret);
  EXPECT_EQ(relay_->log().find(fakes::fake_oauth::default_client_secret), std::string::npos);
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

TEST_F(secrets, the_credential_wins_over_the_secret_in_the_config) {
  auto body = google_.config();
  const std::string right = fakes::fake_oauth::default_client_secret;
  body.replace(body.find(right), right.size(), "not-the-secret");
  make_relay(body);
  const auto credentials = relay_->dir() / "credentials";
  fs::create_directories(credentials);
  std::ofstream(credentials / "client-secret") << right;
  google_.store_token(relay_->state_dir(), relay_->key_file());
  relay_->start({{"CREDENTIALS_DIRECTORY", credentials.string()}});
  deliver("credential-first");
  EXPECT_EQ(google_.oauth().last_token_request().at("client_secret"), right);
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

}  // namespace
}  // namespace oauth_relay::test_support
