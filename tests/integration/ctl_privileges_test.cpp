// oauth-relayctl run as root with the daemon stopped, against a state
// directory owned by a real service user who planted symbolic links in it
// (queue.db, queue.db-wal, queue.db-shm, spool). Every command either works
// as that user or fails with a clear error, and no file outside the state
// directory changes owner, mode or content.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/scratch_user.hpp"

namespace oauth_relay::test_support {
namespace {

namespace fs = std::filesystem;
using fakes::fake_oauth;

constexpr const char* account = "alice@example.com";

struct file_state {
  bool exists = false;
  unsigned mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string content;
  bool operator==(const file_state&) const = default;
};

std::ostream& operator<<(std::ostream& out, const file_state& f) {
  return out << (f.exists ? "" : "missing ") << std::oct << f.mode << std::dec << " " << f.uid
             << ":" << f.gid << " \"" << f.content << "\"";
}

file_state state_of(const fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return {};
  std::string content;
  if (S_ISREG(st.st_mode)) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    content = text.str();
  }
  return {true, static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid, content};
}

class ctl_privileges : public testing::Test {
 protected:
  void SetUp() override {
    if (auto why = scratch_users_unavailable(); !why.empty()) GTEST_SKIP() << why;
    service_.emplace("orm-svc");
    // The service user may reach its directory, as under /var/lib.
    fs::permissions(dir_.path(), fs::perms(0711));
    fs::create_directories(state_dir_);
    fs::permissions(state_dir_, fs::perms(0700));
    ASSERT_EQ(::chown(state_dir_.c_str(), service_->uid(), service_->gid()), 0);
    // Root's files the links point at, as /etc/shadow would be.
    fs::create_directories(targets_);
    for (const char* name : {"shadow-copy", "passwd-copy", "db-copy"}) {
      std::ofstream(targets_ / name) << "root:x:0:0:" << name << "\n";
      fs::permissions(targets_ / name, fs::perms(0640));
    }
    fs::create_directories(targets_ / "spool-target");
    fs::permissions(targets_ / "spool-target", fs::perms(0755));
    ca_file_ = pki_.write_ca(dir_.path() / "ca.pem");
    oauth_.add_account(account, "1//alice");
    // The token key belongs to the service user, as the package makes it.
    key_file_ = write_token_key(dir_.path());
    ASSERT_EQ(::chown(key_file_.c_str(), service_->uid(), service_->gid()), 0);
    std::ofstream(config_) << "listen: [\"127.0.0.1:0\"]\n"
                           << "state_dir: " << state_dir_.string() << "\n"
                           << "health_socket: " << (dir_.path() / "health.sock").string() << "\n"
                           << "oauth:\n"
                           << "  client_id: \"" << fake_oauth::default_client_id << "\"\n"
                           << "  client_secret: \"" << fake_oauth::default_client_secret << "\"\n"
                           << "  auth_url: " << oauth_.auth_url() << "\n"
                           << "  token_url: " << oauth_.token_url() << "\n"
                           << "  ca_file: " << ca_file_.string() << "\n"
                           << "accounts:\n"
                           << "  - address: " << account << "\n"
                           << "    default: true\n"
                           << secrets_config(key_file_);
  }

  // A link in the state directory, made by the service user.
  void plant(const std::string& name, const fs::path& target) {
    fs::create_symlink(target, state_dir_ / name);
    ASSERT_EQ(::lchown((state_dir_ / name).c_str(), service_->uid(), service_->gid()), 0);
  }

  std::map<std::string, file_state> targets() const {
    std::map<std::string, file_state> out;
    for (const auto& entry : fs::directory_iterator(targets_))
      out[entry.path().filename().string()] = state_of(entry.path());
    out["."] = state_of(targets_);
    return out;
  }

  ctl_result ctl(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {"-c", config_.string()});
    return run_ctl(args, input);
  }

  // Runs every command that touches the state directory; each ends with 0,
  // or 1 and an "error:"/"hint:" pair; the targets never change. Returns
  // each command's result by its name.
  std::map<std::string, ctl_result> run_every_command() {
    const auto before = targets();
    std::map<std::string, ctl_result> results;
    results["import"] =
        ctl({"import", account, "--refresh-token-file", "-", "--no-verify"}, "1//x");
    results["accounts"] = ctl({"accounts"});
    results["test"] = ctl({"test", account});
    results["queue"] = ctl({"queue"});
    // No browser and nothing pasted: it gives up after a second, but it
    // opens the token store first.
    results["authorize"] = ctl({"authorize", account, "--no-browser", "--timeout", "1"});
    for (const auto& [name, r] : results) {
      EXPECT_TRUE(r.status == 0 || r.status == 1) << name << ": " << r.status << "\n" << r.err;
      if (r.status == 1) {
        EXPECT_GE(r.err_lines.size(), 2u) << name << ": " << r.err;
        if (r.err_lines.size() >= 2) {
          EXPECT_EQ(r.err_lines.end()[-2].rfind("error: ", 0), 0u) << name << ": " << r.err;
          EXPECT_EQ(r.err_lines.end()[-1].rfind("hint: ", 0), 0u) << name << ": " << r.err;
        }
      }
      EXPECT_EQ(targets(), before) << "after " << name;
    }
    // Whatever was made in the state directory belongs to the service user.
    for (const auto& entry : fs::directory_iterator(state_dir_)) {
      const auto f = state_of(entry.path());
      EXPECT_EQ(f.uid, service_->uid()) << entry.path();
      EXPECT_EQ(f.gid, service_->gid()) << entry.path();
      if (!entry.is_symlink()) {
        EXPECT_EQ(f.mode & 077, 0u) << entry.path();
      }
    }
    return results;
  }

  temp_dir dir_;
  std::optional<scratch_user> service_;
  fs::path state_dir_ = dir_.path() / "state";
  fs::path targets_ = dir_.path() / "targets";
  fs::path config_ = dir_.path() / "config.yaml";
  fakes::test_pki pki_;
  fake_oauth oauth_{pki_};
  fs::path ca_file_;
  fs::path key_file_;
};

TEST_F(ctl_privileges, links_in_place_of_the_wal_and_shm_files_change_nothing_outside) {
  plant("queue.db-wal", targets_ / "shadow-copy");
  plant("queue.db-shm", targets_ / "passwd-copy");
  plant("spool", targets_ / "spool-target");
  auto results = run_every_command();
  // The links are refused by name, and left for the administrator to see.
  for (const char* name : {"import", "accounts", "test", "authorize"}) {
    EXPECT_EQ(results[name].status, 1) << name;
    EXPECT_EQ(results[name].err_lines,
              (std::vector<std::string>{
                  "error: cannot open the token store: " + (state_dir_ / "queue.db-wal").string() +
                      ": is a symbolic link; refusing to follow it (remove it)",
                  "hint: only oauth-relayd's own files belong in " + state_dir_.string() +
                      ": remove the link, then run this again"}))
        << name;
  }
  EXPECT_TRUE(fs::is_symlink(state_dir_ / "queue.db-wal"));
  EXPECT_TRUE(fs::is_symlink(state_dir_ / "queue.db-shm"));
}

TEST_F(ctl_privileges, a_link_in_place_of_queue_db_is_refused) {
  plant("queue.db", targets_ / "db-copy");
  auto results = run_every_command();
  for (const char* name : {"import", "accounts", "test", "authorize"}) {
    EXPECT_EQ(results[name].status, 1) << name;
    EXPECT_EQ(results[name].err_lines.at(0),
              "error: cannot open the token store: " + (state_dir_ / "queue.db").string() +
                  ": is a symbolic link; refusing to follow it (remove it)")
        << name;
  }
}

TEST_F(ctl_privileges, with_only_the_spool_a_link_every_command_works_as_the_service_user) {
  plant("spool", targets_ / "spool-target");
  auto results = run_every_command();
  EXPECT_EQ(results["import"].status, 0) << results["import"].err;
  EXPECT_EQ(results["import"].out_lines,
            (std::vector<std::string>{
                "imported a refresh token for alice@example.com (not checked)",
                "oauth-relayd is not running; it will use the token when it starts (systemctl "
                "start oauth-relay)"}));
  EXPECT_EQ(results["accounts"].status, 0) << results["accounts"].err;
  EXPECT_EQ(results["accounts"].out_lines.at(1).rfind("alice@example.com  consent  expired", 0), 0u)
      << results["accounts"].out;
  // The imported token was not checked: Google refuses it, as test says.
  EXPECT_EQ(results["test"].status, 1);
  EXPECT_EQ(results["test"].out_lines.at(0),
            "[ok]     refresh token of alice@example.com in the token store");
  EXPECT_EQ(results["queue"].err_lines.at(0),
            "error: oauth-relayd is not running (cannot connect to " +
                (dir_.path() / "control.sock").string() + ")");
  const auto db = state_of(state_dir_ / "queue.db");
  EXPECT_EQ(db.uid, service_->uid());
  EXPECT_EQ(db.mode, 0600u);
}

TEST_F(ctl_privileges, a_state_dir_that_is_a_link_is_not_followed_by_root) {
  const auto real = dir_.path() / "real-state";
  fs::rename(state_dir_, real);
  fs::create_symlink(real, state_dir_);
  const auto r = ctl({"accounts"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: " + state_dir_.string() +
                    " (state_dir) is a symbolic link; oauth-relayctl run as root does not follow "
                    "it",
                "hint: set state_dir in " + config_.string() + " to the directory it points to"}));
  EXPECT_TRUE(fs::is_empty(real));
}

TEST_F(ctl_privileges, a_missing_state_dir_is_not_created_by_root) {
  fs::remove(state_dir_);
  const auto r = ctl({"import", account, "--refresh-token-file", "-", "--no-verify"}, "1//x");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: " + state_dir_.string() + " (state_dir) does not exist",
                "hint: it belongs to the user oauth-relayd runs as: start oauth-relayd once "
                "(systemctl start oauth-relay) or create it: install -d -m 0700 -o oauth-relay -g "
                "oauth-relay " +
                    state_dir_.string()}));
  EXPECT_FALSE(fs::exists(state_dir_));
}

TEST_F(ctl_privileges, another_user_is_told_who_may) {
  scratch_user stranger("orm-other");
  fs::permissions(config_, fs::perms(0644));
  const auto r = stranger.run({relayctl_path(), "-c", config_.string(), "accounts"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(split_lines(r.err), (std::vector<std::string>{
                                    "error: " + state_dir_.string() + " (state_dir) belongs to " +
                                        service_->name() + ", not to " + stranger.name(),
                                    "hint: run oauth-relayctl as root (it then acts as " +
                                        service_->name() + ") or as " + service_->name() +
                                        ": sudo -u " + service_->name() + " oauth-relayctl ..."}));
}

}  // namespace
}  // namespace oauth_relay::test_support
