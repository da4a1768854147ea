// fork/exec of the daemon under test, with its stderr in a file the test reads.
#include "integration/support/relay_process.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "auth/token_key.hpp"
#include "common/text.hpp"

namespace oauth_relay::test_support {
namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Waits up to `timeout` for `pid`; returns its exit status (128+N for signal N), -1 on timeout.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::string relayd_path() {
  return OAUTH_RELAYD_PATH;
}
std::string source_dir() {
  return OAUTH_RELAY_SOURCE_DIR;
}

bool long_tests_enabled() {
  const char* value = std::getenv("OAUTH_RELAY_LONG_TESTS");
  return value != nullptr && std::string(value) == "1";
}

temp_dir::temp_dir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base ? base : "/tmp") + "/oauth-relay-test-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string minimal_config_body() {
  return "hostname: relay.test\n"
         "oauth:\n"
         "  client_id: \"test-client.apps.googleusercontent.com\"\n"
         "  client_secret: \"s3cret-never-logged\"\n"
         "accounts:\n"
         "  - address: sender@example.com\n"
         "    default: true\n";
}

std::filesystem::path write_token_key(const std::filesystem::path& dir) {
  const auto file = dir / "token.key";
  std::random_device random;
  std::string key;
  while (key.size() < 32) key += static_cast<char>(random() & 0xff);
  std::filesystem::remove(file);
  std::ofstream(file) << base64_encode(key) << "\n";
  std::filesystem::permissions(file, std::filesystem::perms::owner_read);
  return file;
}

std::string secrets_config(const std::filesystem::path& key_file) {
  return "secrets:\n  key_file: " + key_file.string() + "\n";
}

auth::token_cipher token_key(const std::filesystem::path& key_file) {
  return auth::load_token_key_file(key_file, auth::when_missing::fail);
}

relay_process::relay_process(std::string body, std::string listen)
    : log_path_(dir_.path() / "relayd.log"), listen_(std::move(listen)) {
  write_token_key(dir_.path());
  write_config(body);
}

relay_process::~relay_process() {
  if (pid_ > 0) kill9();
}

void relay_process::write_config(const std::string& body) {
  std::ofstream out(config_path(), std::ios::trunc);
  out << "listen: " << listen_ << "\n"
      << "state_dir: " << state_dir().string() << "\n"
      << "health_socket: " << (dir_.path() / "health.sock").string() << "\n"
      << body
      << (body.empty() || body.back() == '\n' ? "" : "\n")
      // Last, so the body's line numbers stay what the tests expect.
      << secrets_config(key_file());
}

void relay_process::start(std::map<std::string, std::string> environment, int listening_fd) {
  log_offset_ = static_cast<int>(
      std::filesystem::exists(log_path_) ? std::filesystem::file_size(log_path_) : 0);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    ::dup2(fd, STDERR_FILENO);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, STDIN_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_PID");
    ::unsetenv("WATCHDOG_USEC");
    if (listening_fd >= 0) {
      // sd_listen_fds(3): the first passed socket is fd 3, inherited across exec.
      if (listening_fd != 3) {
        ::dup2(listening_fd, 3);
      } else {
        ::fcntl(3, F_SETFD, 0);
      }
      ::setenv("LISTEN_FDS", "1", 1);
      ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    }
    // Nothing else of the test process goes along: Asio opens sockets without
    // FD_CLOEXEC, and a fake's listening socket held open by the daemon would
    // keep that port taken (and take its connections) after the fake is gone.
    ::close_range(listening_fd >= 0 ? 4 : 3, ~0U, 0);
    for (const auto& [key, value] : environment) {
      if (value == "$PID") {
        ::setenv(key.c_str(), std::to_string(::getpid()).c_str(), 1);
      } else {
        ::setenv(key.c_str(), value.c_str(), 1);
      }
    }
    if (run_as_uid_ != static_cast<uid_t>(-1) &&
        (::setgroups(0, nullptr) != 0 || ::setgid(run_as_gid_) != 0 ||
         ::setuid(run_as_uid_) != 0)) {
      ::_exit(126);
    }
    const std::string binary = relayd_path();
    const std::string config = config_path().string();
    std::vector<char*> argv{const_cast<char*>(binary.c_str()), const_cast<char*>("-c"),
                            const_cast<char*>(config.c_str())};
    for (auto& a : arguments_) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  pid_ = pid;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string text = read_file(log_path_).substr(static_cast<std::size_t>(log_offset_));
    auto at = text.find("event=started");
    if (at != std::string::npos) {
      // listen=ADDRESS, or listen="ADDRESS ADDRESS ..." when there are several.
      auto begin = text.find("listen=", at) + 7;
      const bool quoted = text[begin] == '"';
      if (quoted) ++begin;
      const auto end = text.find(quoted ? '"' : ' ', begin);
      std::istringstream list(text.substr(begin, end - begin));
      endpoints_.clear();
      for (std::string e; list >> e;) endpoints_.push_back(e);
      port_ = 0;
      for (const auto& e : endpoints_) {
        if (e.starts_with("unix:")) continue;
        port_ = static_cast<std::uint16_t>(std::stoi(e.substr(e.rfind(':') + 1)));
        break;
      }
      return;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("oauth-relayd exited during start:\n" + text);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw std::runtime_error("oauth-relayd did not start:\n" + log());
}

int relay_process::stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, sig);
  int status = wait_exit(pid_, timeout);
  if (status != -1) pid_ = -1;
  return status;
}

void relay_process::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  wait_exit(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

void relay_process::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::string relay_process::log() const {
  return read_file(log_path_);
}

bool relay_process::wait_for_log(const std::string& text, std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  do {
    if (log().find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  return false;
}

command_result run_command(const std::vector<std::string>& argv, const std::string& input,
                           std::chrono::milliseconds timeout) {
  temp_dir io;
  const auto in_path = io.path() / "in", out_path = io.path() / "out", err_path = io.path() / "err";
  std::ofstream(in_path, std::ios::binary) << input;
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(::open(in_path.c_str(), O_RDONLY), STDIN_FILENO);
    ::dup2(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), STDOUT_FILENO);
    ::dup2(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), STDERR_FILENO);
    ::close_range(3, ~0U, 0);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  command_result result;
  result.status = wait_exit(pid, timeout);
  if (result.status == -1) {
    ::kill(pid, SIGKILL);
    wait_exit(pid, std::chrono::seconds(5));
  }
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  return result;
}

}  // namespace oauth_relay::test_support
