// Runs the real oauth-relayd binary for a test: a private directory with its
// config, token key and state, the port it bound (listen 127.0.0.1:0), its
// log, and signals to stop, reload or kill it.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "auth/token_cipher.hpp"

namespace oauth_relay::test_support {

// A fresh directory under TMPDIR, removed with everything in it.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// The oauth:/accounts: part every test config needs (no real Google data).
std::string minimal_config_body();

// A new random token key in DIR/token.key (mode 0400, as the package makes
// it), and the config lines that name it (secrets.key_file).
std::filesystem::path write_token_key(const std::filesystem::path& dir);
std::string secrets_config(const std::filesystem::path& key_file);
// The key in `key_file`, for a test that opens the daemon's token store
// itself: auth::token_store store(state_dir, token_key(key_file)).
auth::token_cipher token_key(const std::filesystem::path& key_file);

class relay_process {
 public:
  // `body` is the YAML after the listen/state_dir/health_socket lines that
  // the harness writes itself (secrets.key_file comes after it); `listen` the
  // value of its listen line (the port of its first TCP address is port()).
  explicit relay_process(std::string body = minimal_config_body(),
                         std::string listen = "[\"127.0.0.1:0\"]");
  ~relay_process();  // SIGKILLs a process still running

  // Starts the daemon and waits until it logs event=started (throws if it exits first).
  // A `listening_fd` is handed over as systemd does (fd 3, LISTEN_FDS=1, LISTEN_PID).
  void start(std::map<std::string, std::string> environment = {}, int listening_fd = -1);
  // Sends `signal` and waits for the exit status (-1 on timeout).
  int stop(int signal, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  void kill9();
  void signal(int signal);
  // The next start() runs the daemon as `uid`/`gid` with no supplementary
  // groups (the test runs as root); the directory must be theirs.
  void run_as(uid_t uid, gid_t gid) {
    run_as_uid_ = uid;
    run_as_gid_ = gid;
  }
  // Rewrites config.yaml with a new body (the harness lines stay).
  void write_config(const std::string& body);
  // Passes `argument` to oauth-relayd from the next start() on ("--log-level=debug").
  void add_argument(std::string argument) { arguments_.push_back(std::move(argument)); }
  // Every listener of the last start, as its started line names them
  // ("127.0.0.1:40123", "unix:/tmp/.../smtp.sock").
  const std::vector<std::string>& endpoints() const { return endpoints_; }
  // Waits until the log contains `text` (true) or the timeout passes.
  bool wait_for_log(const std::string& text,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  std::uint16_t port() const { return port_; }
  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }
  std::string log() const;
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path state_dir() const { return dir_.path() / "state"; }
  std::filesystem::path config_path() const { return dir_.path() / "config.yaml"; }
  // The daemon's token key (secrets.key_file): made with the directory.
  std::filesystem::path key_file() const { return dir_.path() / "token.key"; }

 private:
  temp_dir dir_;
  std::filesystem::path log_path_;
  std::string listen_;
  std::vector<std::string> arguments_;
  std::vector<std::string> endpoints_;
  pid_t pid_ = -1;
  uid_t run_as_uid_ = static_cast<uid_t>(-1);
  gid_t run_as_gid_ = static_cast<gid_t>(-1);
  std::uint16_t port_ = 0;
  int log_offset_ = 0;
};

// Runs a command (argv) with `input` on stdin; returns exit status and output.
struct command_result {
  int status = -1;
  std::string out;
  std::string err;
};
command_result run_command(const std::vector<std::string>& argv, const std::string& input = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds(60));

std::string relayd_path();
std::string source_dir();

// True with OAUTH_RELAY_LONG_TESTS=1: the full-size crash and fault tests
// (named long_*, ctest label `long`) run instead of skipping.
bool long_tests_enabled();

}  // namespace oauth_relay::test_support
