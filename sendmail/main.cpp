// oauth-relay-sendmail: a /usr/sbin/sendmail for programs on this host. Reads
// the whole message first, then hands it to oauth-relayd over SMTP; exit 75
// when the daemon cannot take it, so the caller keeps the message.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <iostream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "common/text.hpp"
#include "config/config.hpp"
#include "sendmail/address.hpp"
#include "sendmail/message.hpp"

namespace {

using namespace oauth_relay::sendmail;
using std::chrono::seconds;

constexpr const char* program = "oauth-relay-sendmail";
// A `listen` entry for a Unix socket: "unix:/run/oauth-relay/smtp.sock".
constexpr std::string_view unix_prefix = "unix:";
constexpr auto connect_timeout = seconds(30);
// RFC 5321 §4.5.3.2 suggests minutes; the daemon answers at once except
// after the data, where it waits for one disk sync.
constexpr auto reply_timeout = seconds(120);

// One place the daemon listens: a unix socket path, or a TCP host and port.
struct endpoint {
  std::string unix_path;  // set for a `unix:` listener
  std::string host;
  std::string port;
};

// "unix:/run/oauth-relay/smtp.sock", "127.0.0.1:25", "[::1]:25".
std::string where(const endpoint& e) {
  if (!e.unix_path.empty()) return std::string(unix_prefix) + e.unix_path;
  return (e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host) + ":" + e.port;
}

// Where the daemon listens and the sender's default domain. Only `listen`
// and `hostname` are read, leniently: the full config (and the client secret
// file it names) is usually not readable by the user who sends mail.
struct target {
  // In the order they are tried: a unix listener first (the daemon knows
  // the sending user from the socket itself), then the first TCP one.
  std::vector<endpoint> endpoints;
  std::string hostname;
  std::string note;  // why the defaults were used, for an error message
};

endpoint default_endpoint() {
  return {{}, "127.0.0.1", "25"};
}

target read_target(const std::string& config_path) {
  target t;
  t.hostname = oauth_relay::config::default_hostname();
  YAML::Node root;
  try {
    root = YAML::LoadFile(config_path);
  } catch (const YAML::BadFile&) {
    t.endpoints = {default_endpoint()};
    t.note = config_path + " is not readable (" + std::strerror(errno) +
             "), so the default 127.0.0.1:25 was used";
    return t;
  } catch (const YAML::Exception&) {
    t.endpoints = {default_endpoint()};
    t.note = config_path + " could not be parsed, so the default 127.0.0.1:25 was used";
    return t;
  }
  const std::string not_an_address =
      config_path + ": the first `listen` address is not HOST:PORT, so 127.0.0.1:25 was used";
  try {
    if (root["hostname"] && root["hostname"].IsScalar())
      t.hostname = root["hostname"].as<std::string>();
    const auto listen = root["listen"];
    if (!listen) {
      t.endpoints = {default_endpoint()};
      return t;
    }
    if (!listen.IsSequence() || listen.size() == 0) {
      t.endpoints = {default_endpoint()};
      t.note = config_path + ": `listen` is not a list of addresses, so 127.0.0.1:25 was used";
      return t;
    }
    std::optional<endpoint> unix_listener;
    std::optional<endpoint> tcp_listener;
    for (const auto& entry : listen) {
      if (!entry.IsScalar()) continue;
      const std::string& text = entry.Scalar();
      if (text.starts_with(unix_prefix)) {
        // The path as written: the daemon checks it, and connect() says
        // what is wrong with it.
        const std::string path = text.substr(unix_prefix.size());
        if (!unix_listener && !path.empty()) unix_listener = endpoint{path, {}, {}};
        continue;
      }
      if (tcp_listener) continue;
      // The daemon's own reading of the address, so both agree on what it means.
      const auto address = oauth_relay::config::parse_listen(text);
      if (!address) {
        tcp_listener = default_endpoint();
        t.note = not_an_address;
        continue;
      }
      // A wildcard listener is reached on loopback.
      tcp_listener = endpoint{{},
                              address->host == "0.0.0.0" ? "127.0.0.1"
                              : address->host == "::"    ? "::1"
                                                         : address->host,
                              std::to_string(address->port)};
    }
    if (unix_listener) t.endpoints.push_back(*unix_listener);
    if (tcp_listener) t.endpoints.push_back(*tcp_listener);
    if (t.endpoints.empty()) {
      t.endpoints = {default_endpoint()};
      t.note = config_path + ": `listen` is not a list of addresses, so 127.0.0.1:25 was used";
    }
  } catch (const YAML::Exception&) {
    // A document that is not a mapping: yaml-cpp refuses the lookups.
    t.endpoints = {default_endpoint()};
    t.note = not_an_address;
  }
  return t;
}

std::string login_name() {
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_name) return pw->pw_name;
  return "uid" + std::to_string(::getuid());
}

std::string new_message_id(const std::string& hostname) {
  std::random_device device;
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%lx.%08x%08x", static_cast<long>(std::time(nullptr)),
                device(), device());
  return std::string("<") + buffer + "@" + hostname + ">";
}

struct reply {
  int code = 0;      // 0: the connection failed or timed out
  std::string text;  // all lines, joined with spaces
  std::vector<std::string> lines;
  std::string error;  // when code is 0
};

// A blocking SMTP conversation with every wait bounded.
class smtp_connection {
 public:
  ~smtp_connection() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Empty on success, else the reason.
  std::string connect(const endpoint& e) {
    if (!e.unix_path.empty()) {
      sockaddr_un address{};
      address.sun_family = AF_UNIX;
      if (e.unix_path.size() >= sizeof address.sun_path) {
        return "the socket path is longer than " + std::to_string(sizeof address.sun_path - 1) +
               " bytes";
      }
      std::memcpy(address.sun_path, e.unix_path.data(), e.unix_path.size());
      return connect_to(AF_UNIX, reinterpret_cast<const sockaddr*>(&address), sizeof address);
    }
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (int rc = ::getaddrinfo(e.host.c_str(), e.port.c_str(), &hints, &found); rc != 0) {
      return gai_strerror(rc);
    }
    std::string error = "no address";
    for (auto* ai = found; ai; ai = ai->ai_next) {
      error = connect_to(ai->ai_family, ai->ai_addr, ai->ai_addrlen);
      if (error.empty()) break;
    }
    ::freeaddrinfo(found);
    return error;
  }

  // Empty on success, else the reason.
  std::string send(std::string_view bytes) {
    const auto deadline = std::chrono::steady_clock::now() + reply_timeout;
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<std::size_t>(n));
        continue;
      }
      if (n < 0 && errno != EAGAIN && errno != EINTR) return std::strerror(errno);
      if (!wait(POLLOUT, deadline)) return "timed out";
    }
    return {};
  }

  reply read_reply() {
    reply r;
    const auto deadline = std::chrono::steady_clock::now() + reply_timeout;
    for (;;) {
      const auto eol = buffer_.find("\r\n");
      if (eol == std::string::npos) {
        if (buffer_.size() > 64 * 1024) {
          r.error = "reply line too long";
          return r;
        }
        char chunk[4096];
        ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n > 0) {
          buffer_.append(chunk, static_cast<std::size_t>(n));
          continue;
        }
        if (n == 0) {
          r.error = "the connection was closed";
          return r;
        }
        if (errno != EAGAIN && errno != EINTR) {
          r.error = std::strerror(errno);
          return r;
        }
        if (!wait(POLLIN, deadline)) {
          r.error = "no reply within " + std::to_string(reply_timeout.count()) + " s";
          return r;
        }
        continue;
      }
      std::string line = buffer_.substr(0, eol);
      buffer_.erase(0, eol + 2);
      if (line.size() < 3 || !std::isdigit(static_cast<unsigned char>(line[0]))) {
        r.error = "malformed reply \"" + line + "\"";
        return r;
      }
      r.lines.push_back(line.size() > 4 ? line.substr(4) : std::string());
      r.text += (r.text.empty() ? "" : " ") + line;
      if (line.size() == 3 || line[3] == ' ') {
        r.code = std::stoi(line.substr(0, 3));
        return r;
      }
    }
  }

  reply command(const std::string& line) {
    if (auto error = send(line + "\r\n"); !error.empty()) {
      reply r;
      r.error = error;
      return r;
    }
    return read_reply();
  }

 private:
  // A non-blocking connect bounded by connect_timeout; empty on success.
  std::string connect_to(int family, const sockaddr* address, socklen_t length) {
    fd_ = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) return std::strerror(errno);
    int rc = ::connect(fd_, address, length);
    if (rc != 0 && errno == EAGAIN && family == AF_UNIX) {
      // A unix socket whose listen queue is full does not wait in connect().
      ::close(fd_);
      fd_ = -1;
      return "the listener's queue is full";
    }
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd_, POLLOUT, 0};
      rc = ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(connect_timeout).count()));
      if (rc == 0) {
        errno = ETIMEDOUT;
        rc = -1;
      } else if (rc > 0) {
        int so_error = 0;
        socklen_t size = sizeof so_error;
        ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &so_error, &size);
        errno = so_error;
        rc = so_error == 0 ? 0 : -1;
      }
    }
    if (rc == 0) return {};
    std::string error = std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
    return error;
  }

  bool wait(short events, std::chrono::steady_clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, events, 0};
    return ::poll(&p, 1, static_cast<int>(left.count())) > 0;
  }

  int fd_ = -1;
  std::string buffer_;
};

// The exit status for a reply that is not the expected one, with its message.
int refused(const endpoint& t, const std::string& step, const reply& r) {
  if (r.code == 0) {
    std::cerr << program << ": the relay at " << where(t) << " failed " << step << ": " << r.error
              << "; the message was not sent, try again later\n";
    return exit_tempfail;
  }
  if (r.code >= 400 && r.code < 500) {
    std::cerr << program << ": the relay at " << where(t) << " cannot take the message now ("
              << step << "): " << r.text << "; try again later\n";
    return exit_tempfail;
  }
  std::cerr << program << ": the relay at " << where(t) << " refused the message (" << step
            << "): " << r.text << "\n";
  return exit_unavailable;
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

int submit(const target& to, const submission& s) {
  // The envelope commands first: should one not be a checked mailbox (a
  // bug), no connection is opened at all.
  const std::string mail_from = envelope_command(envelope_verb::mail_from, s.sender);
  std::vector<std::string> rcpt_to;
  for (const auto& rcpt : s.recipients) {
    rcpt_to.push_back(envelope_command(envelope_verb::rcpt_to, rcpt));
  }
  smtp_connection c;
  // A unix listener that is not there (socket activation passes only the
  // TCP sockets) or refuses: the TCP one is tried next.
  std::string failures;
  const endpoint* connected = nullptr;
  for (const auto& e : to.endpoints) {
    const auto error = c.connect(e);
    if (error.empty()) {
      connected = &e;
      break;
    }
    failures += (failures.empty() ? "" : ", nor at ") + where(e) + ": " + error;
  }
  if (!connected) {
    std::cerr << program << ": cannot connect to the relay at " << failures
              << " (is oauth-relayd running? systemctl status oauth-relay)"
              << (to.note.empty() ? "" : "; " + to.note) << "; the message was not sent\n";
    return exit_tempfail;
  }
  const endpoint& t = *connected;
  auto r = c.read_reply();
  if (r.code != 220) return refused(t, "greeting", r);
  const std::string me = oauth_relay::config::default_hostname();
  r = c.command("EHLO " + me);
  bool esmtp = r.code == 250;
  if (!esmtp) {
    if (r.code == 0) return refused(t, "EHLO", r);
    r = c.command("HELO " + me);
    if (r.code != 250) return refused(t, "HELO", r);
  }
  bool size = false, eight_bit = false, utf8 = false;
  for (const auto& line : r.lines) {
    std::string keyword = line.substr(0, line.find(' '));
    for (char& ch : keyword) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    size = size || keyword == "SIZE";
    eight_bit = eight_bit || keyword == "8BITMIME";
    utf8 = utf8 || keyword == "SMTPUTF8";
  }
  std::string mail = mail_from;
  if (esmtp && size) mail += " SIZE=" + std::to_string(s.content.size());
  if (esmtp && eight_bit && !is_ascii(s.content)) mail += " BODY=8BITMIME";
  bool wide = !is_ascii(s.sender);
  for (const auto& rcpt : s.recipients) wide = wide || !is_ascii(rcpt);
  if (esmtp && utf8 && wide) mail += " SMTPUTF8";
  r = c.command(mail);
  if (r.code != 250) return refused(t, "sender <" + s.sender + ">", r);
  // All or nothing: a refused recipient stops the message, so that the
  // caller's retry cannot duplicate it for the others.
  for (std::size_t i = 0; i < rcpt_to.size(); ++i) {
    r = c.command(rcpt_to[i]);
    if (r.code != 250 && r.code != 251) {
      const int status = refused(t, "recipient <" + s.recipients[i] + ">", r);
      c.command("QUIT");
      return status;
    }
  }
  r = c.command("DATA");
  if (r.code != 354) return refused(t, "DATA", r);
  if (auto error = c.send(dot_stuff(s.content)); !error.empty()) {
    reply failed;
    failed.error = error;
    return refused(t, "sending the message", failed);
  }
  r = c.read_reply();
  if (r.code != 250) return refused(t, "end of data", r);
  c.command("QUIT");
  return exit_ok;
}

void usage(std::ostream& out) {
  out << "Usage: " << program
      << " [-c FILE] [-t] [-i|-oi] [-f SENDER] [-F NAME] [RECIPIENT...] < message\n"
         "Hands a message to oauth-relayd (a sendmail(8) for this host).\n"
         "  -c FILE     configuration (default /etc/oauth-relay/config.yaml): its\n"
         "              `unix:` listener, else the first `listen` address, and `hostname`\n"
         "  -t          recipients from To:, Cc:, Bcc: too; Bcc: is removed\n"
         "  -i, -oi     a line with a single dot does not end the message\n"
         "  -f SENDER   envelope sender (default: your login name @ hostname)\n"
         "  -F NAME     full name for a From: header added when there is none\n"
         "  --help, --version\n"
         "Ignored for compatibility: -odi -oem and other -o options, -bm, -v, -m, -n,\n"
         "-B, -N, -R, -V, -X, -h, -L. Exit 0 sent, 2 usage, 64 an address that is not a\n"
         "mailbox, 65 no recipients, 69 refused by the relay, 75 relay unreachable or\n"
         "busy (try again).\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = parse_arguments(args);
  if (!parsed.value) {
    std::cerr << program << ": " << parsed.error << "\n";
    usage(std::cerr);
    return exit_usage;
  }
  const auto& opts = *parsed.value;
  if (opts.help) {
    usage(std::cout);
    return exit_ok;
  }
  if (opts.version) {
    std::cout << program << " " << OAUTH_RELAY_VERSION << "\n";
    return exit_ok;
  }
  const auto t = read_target(opts.config);
  environment env{login_name(), t.hostname, oauth_relay::rfc5322_date(std::time(nullptr)),
                  new_message_id(t.hostname)};
  // A bad address on the command line is known before the message is read:
  // nothing is read, no connection is made.
  if (auto envelope = command_line_envelope(opts, env); !envelope.value) {
    std::cerr << program << ": " << envelope.error << "; nothing was sent\n";
    return exit_bad_address;
  }
  // The whole message first: nothing is half-sent if the input breaks off.
  std::ios::sync_with_stdio(false);
  const std::string message = read_message(std::cin, opts.ignore_dots);
  if (std::cin.bad()) {
    std::cerr << program << ": cannot read the message from standard input\n";
    return exit_failure;
  }
  auto prepared = prepare(opts, message, env);
  if (!prepared.value) {
    std::cerr << program << ": " << prepared.error << "; nothing was sent\n";
    return prepared.status;
  }
  try {
    return submit(t, *prepared.value);
  } catch (const std::invalid_argument& e) {
    // envelope_command refused an address prepare() let through: a bug,
    // found before any connection.
    std::cerr << program << ": internal error: " << e.what() << "; nothing was sent\n";
    return exit_software;
  }
}
