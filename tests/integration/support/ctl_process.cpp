// fork/exec of oauth-relayctl with three pipes and a reader thread per output.
#include "integration/support/ctl_process.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <stdexcept>

extern char** environ;

namespace oauth_relay::test_support {

std::string relayctl_path() {
  return OAUTH_RELAYCTL_PATH;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

ctl_process::ctl_process(const std::vector<std::string>& args,
                         std::map<std::string, std::string> environment) {
  environment.try_emplace("DISPLAY", "");
  environment.try_emplace("WAYLAND_DISPLAY", "");
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  const std::string binary = relayctl_path();
  std::vector<std::string> argv_storage = {binary};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  // Everything the child needs is built before fork: other threads of the
  // test may hold the allocator's lock at the moment of the fork.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    if (!environment.count(entry.substr(0, entry.find('=')))) env_storage.push_back(entry);
  }
  for (const auto& [key, value] : environment) {
    if (!value.empty()) env_storage.push_back(key + "=" + value);
  }
  std::vector<char*> argv, envp;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::dup2(in[0], STDIN_FILENO);
    ::dup2(out[1], STDOUT_FILENO);
    ::dup2(err[1], STDERR_FILENO);
    ::execve(binary.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  stdin_ = in[1];
  out_thread_ = std::thread([this, fd = out[0]] { reader(fd, out_); });
  err_thread_ = std::thread([this, fd = err[0]] { reader(fd, err_); });
}

ctl_process::~ctl_process() {
  if (pid_ > 0 && status_ == -1) {
    ::kill(pid_, SIGKILL);
    wait(std::chrono::seconds(10));
  }
  close_stdin();
  if (out_thread_.joinable()) out_thread_.join();
  if (err_thread_.joinable()) err_thread_.join();
}

void ctl_process::reader(int fd, std::string& sink) {
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      --open_streams_;
      changed_.notify_all();
      break;
    }
    sink.append(buffer, static_cast<std::size_t>(n));
    changed_.notify_all();
  }
  ::close(fd);
}

std::optional<std::string> ctl_process::wait_for_line(
    const std::function<bool(const std::string&)>& match, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto complete =
        out_.substr(0, out_.rfind('\n') == std::string::npos ? 0 : out_.rfind('\n') + 1);
    for (const auto& line : split_lines(complete)) {
      if (match(line)) return line;
    }
    if (open_streams_ == 0) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) return std::nullopt;
  }
}

bool ctl_process::wait_for_stderr(const std::string& text, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    return err_.find(text) != std::string::npos || open_streams_ == 0;
  }) && err_.find(text) != std::string::npos;
}

void ctl_process::write_stdin(const std::string& text) {
  std::string_view rest = text;
  while (!rest.empty() && stdin_ >= 0) {
    const ssize_t n = ::write(stdin_, rest.data(), rest.size());
    if (n <= 0) return;
    rest.remove_prefix(static_cast<std::size_t>(n));
  }
}

void ctl_process::close_stdin() {
  if (stdin_ >= 0) ::close(stdin_);
  stdin_ = -1;
}

int ctl_process::wait(std::chrono::milliseconds timeout) {
  if (status_ != -1) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      // Let the readers drain what the process wrote last.
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::seconds(5), [&] { return open_streams_ == 0; });
      return status_;
    }
    if (r < 0 || std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string ctl_process::out() const {
  std::lock_guard lock(mutex_);
  return out_;
}
std::string ctl_process::err() const {
  std::lock_guard lock(mutex_);
  return err_;
}
std::vector<std::string> ctl_process::out_lines() const {
  return split_lines(out());
}
std::vector<std::string> ctl_process::err_lines() const {
  return split_lines(err());
}

ctl_result run_ctl(const std::vector<std::string>& args, const std::string& input,
                   std::map<std::string, std::string> environment) {
  ctl_process p(args, std::move(environment));
  p.write_stdin(input);
  p.close_stdin();
  ctl_result r;
  r.status = p.wait(std::chrono::seconds(60));
  r.out = p.out();
  r.err = p.err();
  r.out_lines = split_lines(r.out);
  r.err_lines = split_lines(r.err);
  return r;
}

namespace {

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

}  // namespace

http_result http_get(const std::string& url, const std::optional<std::filesystem::path>& ca_file) {
  http_result result;
  std::unique_ptr<CURL, void (*)(CURL*)> curl(curl_easy_init(), curl_easy_cleanup);
  CURL* c = curl.get();
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_PROXY, "");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30'000L);
  if (ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, ca_file->c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &result.body);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    result.error = error[0] != '\0' ? error : curl_easy_strerror(rc);
    return result;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.status);
  char* location = nullptr;
  curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &location);
  if (location) result.location = location;
  return result;
}

std::uint16_t unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

}  // namespace oauth_relay::test_support
