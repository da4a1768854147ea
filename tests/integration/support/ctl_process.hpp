// Runs the real oauth-relayctl binary for a test with pipes on all three
// standard streams, so a test can read the consent URL it prints while it
// waits, paste into its standard input, and collect what it said.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace oauth_relay::test_support {

std::string relayctl_path();

class ctl_process {
 public:
  // Starts oauth-relayctl with `args`. `environment` entries are set (an
  // empty value unsets); DISPLAY and WAYLAND_DISPLAY are unset unless given,
  // so no test ever starts a real browser.
  explicit ctl_process(const std::vector<std::string>& args,
                       std::map<std::string, std::string> environment = {});
  ~ctl_process();  // SIGKILLs a process still running
  ctl_process(const ctl_process&) = delete;
  ctl_process& operator=(const ctl_process&) = delete;

  // The first complete standard-output line for which `match` is true, or
  // nothing when none came within `timeout` (or the process ended first).
  std::optional<std::string> wait_for_line(const std::function<bool(const std::string&)>& match,
                                           std::chrono::milliseconds timeout);
  bool wait_for_stderr(const std::string& text, std::chrono::milliseconds timeout);

  void write_stdin(const std::string& text);
  void close_stdin();

  // The exit status (128+N for signal N), or -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  std::string out() const;
  std::string err() const;
  std::vector<std::string> out_lines() const;
  std::vector<std::string> err_lines() const;

 private:
  void reader(int fd, std::string& sink);

  pid_t pid_ = -1;
  int stdin_ = -1;
  int status_ = -1;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string out_, err_;
  int open_streams_ = 2;
  std::thread out_thread_, err_thread_;
};

// Runs oauth-relayctl to completion with `input` on standard input.
struct ctl_result {
  int status = -1;
  std::string out;
  std::string err;
  std::vector<std::string> out_lines;
  std::vector<std::string> err_lines;
};
ctl_result run_ctl(const std::vector<std::string>& args, const std::string& input = {},
                   std::map<std::string, std::string> environment = {});

std::vector<std::string> split_lines(const std::string& text);

// A plain HTTP(S) GET as a browser does, without following redirects.
struct http_result {
  long status = 0;
  std::string location;  // the Location of a redirect
  std::string body;
  std::string error;  // transport error; empty when HTTP happened
};
http_result http_get(const std::string& url,
                     const std::optional<std::filesystem::path>& ca_file = std::nullopt);

// A loopback TCP port nothing listens on (bound, then closed).
std::uint16_t unused_port();

}  // namespace oauth_relay::test_support
