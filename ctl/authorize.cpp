// The installed-application consent of RFC 8252 §7.3 through the account's
// provider (Google refuses the device flow for the Gmail scope; Microsoft's is
// authorize_device.cpp): a loopback listener, standard input for a pasted
// redirect, PKCE, and the checks that decide whether anything is stored.
#include "ctl/authorize.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <vector>

#include "auth/consent.hpp"
#include "auth/http_client.hpp"
#include "auth/token_client.hpp"
#include "common/secret.hpp"
#include "ctl/state_access.hpp"

extern char** environ;

namespace oauth_relay::ctl {
namespace {

using steady = std::chrono::steady_clock;

// A browser sends a request line and a few headers; anything larger is not one.
constexpr std::size_t max_request = 16 * 1024;
// A connection that sends nothing (browsers preconnect) is dropped after this.
constexpr std::chrono::seconds idle_connection{30};
// A browser opens a handful (preconnects, favicon); beyond this the oldest
// goes, so a local process cannot exhaust the tool's descriptors.
constexpr std::size_t max_connections = 16;

class fd_holder {
 public:
  explicit fd_holder(int fd = -1) : fd_(fd) {}
  ~fd_holder() { reset(); }
  fd_holder(fd_holder&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  fd_holder& operator=(fd_holder&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

// 127.0.0.1 only: the redirect carries the authorization code.
class loopback_listener {
 public:
  explicit loopback_listener(std::uint16_t port) {
    fd_ = fd_holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd_.get() < 0) throw_error(port, errno);
    const int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_.get(), 16) != 0) {
      throw_error(port, errno);
    }
    socklen_t length = sizeof address;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
  }
  int fd() const { return fd_.get(); }
  std::uint16_t port() const { return port_; }

 private:
  [[noreturn]] static void throw_error(std::uint16_t port, int error) {
    throw failure(
        "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(error),
        "choose another port with --port N, or leave --port out to use any free port");
  }
  fd_holder fd_;
  std::uint16_t port_ = 0;
};

// Where the redirect came from.
struct arrival {
  auth::redirect_params params;
  fd_holder browser;  // the connection to answer; empty when pasted on standard input
};

std::string html_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string page(std::string_view title, const std::vector<std::string>& paragraphs) {
  std::string html = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>oauth-relay: " +
                     html_escape(title) + "</title></head>\n<body><h1>" + html_escape(title) +
                     "</h1>\n";
  for (const auto& p : paragraphs) html += "<p>" + html_escape(p) + "</p>\n";
  return html + "</body></html>\n";
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the browser went away: nothing more to tell it
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

void respond(int fd, int status, std::string_view reason, std::string_view html) {
  // Back to blocking with a bound, so a stuck browser cannot hold the tool.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval limit{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  std::string response = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                         "\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: " +
                         std::to_string(html.size()) +
                         "\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n";
  response += html;
  send_all(fd, response);
  ::shutdown(fd, SHUT_WR);
}

// Waits for the first redirect that carries an answer to this request: a
// GET of "/?..." on the listener, or a line on standard input that parses as
// one, with our `state`. Other requests (favicon, probes) are answered 404,
// and an answer with another state (an old tab, another local process) is
// answered 400 and set aside: the wait goes on for the right one.
class redirect_waiter {
 public:
  redirect_waiter(int listener, int input, std::string state, std::ostream& notes)
      : listener_(listener), input_(input), state_(std::move(state)), notes_(notes) {}

  std::optional<arrival> wait(steady::time_point deadline) {
    for (;;) {
      const auto now = steady::now();
      if (now >= deadline) return std::nullopt;
      drop_idle(now);
      std::vector<pollfd> fds;
      fds.push_back({listener_, POLLIN, 0});
      if (input_ >= 0) fds.push_back({input_, POLLIN, 0});
      for (const auto& c : connections_) fds.push_back({c.fd.get(), POLLIN, 0});
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
      const int ready =
          ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left, 1000)));
      if (ready < 0 && errno != EINTR) {
        throw failure(std::string("waiting for the redirect failed: ") + std::strerror(errno),
                      "run the command again");
      }
      if (ready <= 0) continue;
      std::size_t i = 0;
      if (fds[i++].revents != 0) accept_all();
      if (input_ >= 0) {
        if (fds[i++].revents != 0) {
          if (auto got = read_input()) return got;
        }
      }
      // Connections were appended after the ones polled; walk the polled ones.
      const std::size_t polled = fds.size() - i;
      for (std::size_t k = 0; k < polled && k < connections_.size(); ++k) {
        if (fds[i + k].revents == 0) continue;
        if (auto got = read_connection(k)) return got;
      }
      connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                        [](const connection& c) { return c.fd.get() < 0; }),
                         connections_.end());
    }
  }

 private:
  struct connection {
    fd_holder fd;
    std::string data;
    steady::time_point since;
  };

  void drop_idle(steady::time_point now) {
    connections_.erase(
        std::remove_if(connections_.begin(), connections_.end(),
                       [now](const connection& c) { return now - c.since > idle_connection; }),
        connections_.end());
  }

  void accept_all() {
    for (;;) {
      const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      if (connections_.size() >= max_connections) {
        // The oldest has had the longest to send its request.
        auto oldest = std::min_element(
            connections_.begin(), connections_.end(),
            [](const connection& a, const connection& b) { return a.since < b.since; });
        connections_.erase(oldest);
      }
      connections_.push_back({fd_holder(fd), {}, steady::now()});
    }
  }

  // RFC 6749 §10.12: an answer to another request must not be used; it is
  // no reason to give up on ours either.
  bool ours(const auth::redirect_params& params) const {
    return params.state && *params.state == state_;
  }
  static constexpr const char* not_ours =
      "An answer to another authorization request (its state does not match) was ignored; still "
      "waiting for the answer to the URL printed last.\n";

  std::optional<arrival> read_connection(std::size_t index) {
    connection& c = connections_[index];
    char buffer[4096];
    const ssize_t n = ::read(c.fd.get(), buffer, sizeof buffer);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return std::nullopt;
    if (n <= 0) {
      c.fd.reset();
      return std::nullopt;
    }
    c.data.append(buffer, static_cast<std::size_t>(n));
    auto end = c.data.find("\r\n\r\n");
    if (end == std::string::npos) end = c.data.find("\n\n");
    if (end == std::string::npos) {
      if (c.data.size() > max_request) c.fd.reset();
      return std::nullopt;
    }
    std::istringstream line(c.data.substr(0, c.data.find('\n')));
    std::string method, target;
    line >> method >> target;
    if (method == "GET" && auth::target_path(target) == "/") {
      if (auto params = auth::parse_redirect(target); params && params->answered()) {
        if (!ours(*params)) {
          notes_ << not_ours;
          respond(c.fd.get(), 400, "Bad Request",
                  page("Not this authorization",
                       {"This answer belongs to another oauth-relayctl authorize request (an "
                        "older tab or link); it was ignored and nothing was stored.",
                        "Open the URL that oauth-relayctl printed last; it is still waiting."}));
          c.fd.reset();
          return std::nullopt;
        }
        arrival a{std::move(*params), std::move(c.fd)};
        return a;
      }
    }
    respond(c.fd.get(), 404, "Not Found",
            page("Not found", {"This address only receives Google's answer for oauth-relayctl "
                               "authorize."}));
    c.fd.reset();
    return std::nullopt;
  }

  std::optional<arrival> read_input() {
    char buffer[4096];
    const ssize_t n = ::read(input_, buffer, sizeof buffer);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return std::nullopt;
    const bool eof = n <= 0;
    if (!eof) pending_.append(buffer, static_cast<std::size_t>(n));
    for (;;) {
      auto newline = pending_.find('\n');
      if (newline == std::string::npos) {
        if (!eof || pending_.empty()) break;
        newline = pending_.size();
      }
      const std::string line = pending_.substr(0, newline);
      pending_.erase(0, std::min(newline + 1, pending_.size()));
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      if (auto params = auth::parse_redirect(line); params && params->answered()) {
        if (!ours(*params)) {
          notes_ << not_ours;
          continue;
        }
        return arrival{std::move(*params), fd_holder()};
      }
      notes_ << "That is not the address Google redirected to (it has no code= or error=); paste "
                "the whole address from the browser's address bar.\n";
    }
    if (eof) input_ = -1;  // keep waiting for the browser alone
    return std::nullopt;
  }

  int listener_;
  int input_;
  std::string state_;
  std::ostream& notes_;
  std::vector<connection> connections_;
  std::string pending_;
};

void open_browser(const std::string& url, std::ostream& notes) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string program = "xdg-open";
  char* argv[] = {program.data(), const_cast<char*>(url.c_str()), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, "xdg-open", &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    notes << "Could not start a browser (xdg-open: " << std::strerror(rc)
          << "); open the URL yourself.\n";
  }
  // Not waited for: some browsers keep xdg-open running; the exit reaps it.
}

// The redirect's answer checked, exchanged and stored; `stored` false with
// the reason when nothing was stored, otherwise `stored_note` says what the
// daemon does with the token.
struct outcome {
  bool stored = false;
  auth::advice why;
};

outcome complete(const context& ctx, const config::provider& provider, const std::string& address,
                 const auth::redirect_params& got, const std::string& state,
                 const std::string& verifier, const std::string& redirect_uri,
                 std::string& stored_note) {
  const std::string again = "oauth-relayctl authorize " + address;
  if (!got.state || *got.state != state) {
    // RFC 6749 §10.12: an answer to another request (stale, or forged by
    // another local process) must not be used.
    return {false,
            {"the redirect's state does not match this authorization (an old or forged answer); "
             "nothing was stored",
             "run " + again + " again and use the URL it prints"}};
  }
  if (got.error) {
    return {false, auth::explain_oauth_error(*got.error, got.error_description,
                                             auth::oauth_step::consent, address)};
  }
  const auth::token_client client(std::make_shared<auth::curl_http_client>(), provider);
  const auto r = client.exchange_code(*got.code, verifier, redirect_uri);
  if (!r.ok()) {
    return {false, auth::explain_token_failure(r, auth::oauth_step::code_exchange, address,
                                               provider.oauth)};
  }
  if (lower(r.email) != lower(address)) {
    return {false,
            {"the consent was given by " + r.email + ", not " + address + "; nothing was stored",
             "sign in to " + provider.display_name + " as " + address +
                 " (pick it in the account chooser, or use a private window), then run: " + again}};
  }
  if (provider.is_microsoft()) {
    if (!auth::scope_granted(r.scope, config::microsoft_send_scope)) {
      return {false,
              {address + " did not grant " + std::string(config::microsoft_send_scope) +
                   "; nothing was stored",
               "add the delegated permission SMTP.Send to the app registration (Entra ID > App "
               "registrations > API permissions), then run: " +
                   again}};
    }
  } else if (!auth::scope_granted(r.scope, auth::mail_scope)) {
    return {false,
            {address + " did not grant access to Gmail (the consent lacks " +
                 std::string(auth::mail_scope) + "); nothing was stored",
             "run " + again +
                 " again and leave \"Read, compose, send and permanently delete all your email "
                 "from Gmail\" ticked"}};
  }
  std::ostringstream note;
  try {
    // The access token of the exchange saves the daemon a refresh, and
    // `accounts` reads `valid` right after the consent.
    store_token(ctx,
                {address, r.refresh_token, r.access_token, now_seconds() + r.expires_in.count()},
                note);
  } catch (const failure& f) {
    return {false, {f.what(), f.fix() + ", then: " + again}};
  }
  stored_note = note.str();
  return {true, {}};
}

}  // namespace

// The address `oauth-relayctl test` takes for a service account: the one
// given, unless that is a domain pattern rather than a mailbox.
std::string mailbox_to_test(const std::string& given) {
  if (given.starts_with("*@")) return "someone" + given.substr(1);
  return given;
}

int run_authorize(const context& ctx, const authorize_options& options) {
  const auto& account = require_account(ctx, options.address);
  const auto provider = config::provider_of(ctx.settings, account.provider);
  if (account.service_account) {
    // Domain-wide delegation stands in for every mailbox's consent.
    std::cout << options.address << " needs no consent: it sends through the service account "
              << account.service_account->client_email << " ("
              << account.service_account->file.string()
              << ") with domain-wide delegation; check it with: oauth-relayctl test "
              << mailbox_to_test(options.address) << std::endl;
    return 0;
  }
  if (account.app_only) {
    // The client credentials grant stands in for a person's consent.
    std::cout << options.address
              << " needs no consent: it is app_only (the application's own token, client "
                 "credentials of providers.microsoft); check it with: oauth-relayctl test "
              << options.address << std::endl;
    return 0;
  }
  const std::string address = account.address;
  if (options.device) {
    if (!provider.is_microsoft()) {
      throw failure("--device is for Microsoft accounts; " + address +
                        " is a Google account (Google's device flow does not grant Gmail's scope)",
                    "run oauth-relayctl authorize " + address +
                        " without --device (it prints a URL to open anywhere)");
    }
    return run_device_authorize(ctx, provider, address);
  }
  // Fail before the consent, not after it.
  check_token_can_be_stored(ctx);

  loopback_listener listener(options.port);
  const std::string port = std::to_string(listener.port());
  const std::string redirect_uri = auth::loopback_redirect_uri(listener.port());
  const auth::pkce pkce = auth::make_pkce();
  const std::string state = auth::make_state();
  const std::string url =
      auth::consent_url({provider.oauth.auth_url, provider.oauth.client_id, redirect_uri, address,
                         pkce.challenge, state, provider.consent_scope, !provider.is_microsoft()});

  std::cerr << "Open this URL in a browser and sign in to " << provider.display_name << " as "
            << address << ":" << std::endl;
  std::cout << url << std::endl;
  const bool graphical =
      std::getenv("DISPLAY") != nullptr || std::getenv("WAYLAND_DISPLAY") != nullptr;
  if (graphical && !options.no_browser) {
    if (::geteuid() == 0) {
      // A browser started as root would run as root with root's profile.
      std::cerr << "Not starting a browser as root; open the URL above yourself." << std::endl;
    } else {
      open_browser(url, std::cerr);
    }
  }
  std::cerr << "Waiting up to " << format_duration(options.timeout.count()) << " for "
            << provider.display_name << "'s answer on " << redirect_uri << "\n"
            << "No browser here? On your computer run: ssh -L " << port << ":127.0.0.1:" << port
            << " THIS-SERVER, then open the URL there;\n"
            << "or open the URL anywhere and, after consenting, paste the address the browser "
               "ends on (its page will not load) here and press Enter."
            << std::endl;

  redirect_waiter waiter(listener.fd(), STDIN_FILENO, state, std::cerr);
  auto got = waiter.wait(steady::now() + options.timeout);
  if (!got) {
    throw failure("no answer from " + provider.display_name + "'s consent screen within " +
                      format_duration(options.timeout.count()) + "; nothing was stored",
                  "run oauth-relayctl authorize " + address +
                      " again; without a browser on this server forward the port (ssh -L " + port +
                      ":127.0.0.1:" + port + " THIS-SERVER) or paste the final address here");
  }
  std::string note;  // what the daemon does with the token now, a line each
  const outcome result =
      complete(ctx, provider, address, got->params, state, pkce.verifier, redirect_uri, note);
  if (got->browser.get() >= 0) {
    if (result.stored) {
      respond(got->browser.get(), 200, "OK",
              page(address + " is authorized", {"oauth-relay stored its refresh token; mail for " +
                                                    address + " can go out now.",
                                                "You can close this window."}));
    } else {
      respond(got->browser.get(), 400, "Bad Request",
              page("Authorization failed: nothing was stored",
                   {result.why.cause, "What to do: " + result.why.fix}));
    }
  }
  if (!result.stored) throw failure(result.why);
  std::cout << "authorized " << address << ": refresh token stored\n" << note << std::flush;
  return 0;
}

}  // namespace oauth_relay::ctl
