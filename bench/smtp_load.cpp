// smtp-load: the benchmark's SMTP client. Parallel sessions send fixed-size
// messages, check every reply and report throughput and end-of-data latency.
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

namespace oauth_relay::bench {
namespace {

using steady = std::chrono::steady_clock;

// Every wait on the server (connect, a reply, room to send) gives up after this.
constexpr auto io_timeout = std::chrono::seconds(30);
// Body line length without CRLF: the MIME base64 line length, inside RFC 5322
// §2.1.1's recommended 78.
constexpr std::size_t body_line_length = 76;
// Failures described on stderr; the rest are only counted.
constexpr int max_reported_failures = 10;

struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  int sessions = 20;
  std::uint64_t messages = 0;
  std::size_t size = 10240;
  std::uint64_t per_session = 0;  // 0: all of a session's messages on one connection
  bool pipeline = false;
  double rate = 0;  // messages per second over all sessions; 0: as fast as replies come
  std::string from = "bench@example.com";
  int senders = 1;  // more: LOCAL-K@DOMAIN of --from, K = 0 .. senders-1, taken in turn
  std::string to = "rcpt@example.com";
  std::string auth;        // "USER:PASSWORD": AUTH PLAIN after EHLO on every connection
  bool auth_only = false;  // each "message" is a connection that logs in and quits
};

// The envelope sender (and From:) of a session's message `number`: --from,
// or with --senders N one of N addresses made from it, in turn, so that a
// session's every N messages go once to each (many accounts behind one relay).
std::string sender_of(const options& o, int session, std::uint64_t number) {
  if (o.senders <= 1) return o.from;
  const auto at = o.from.rfind('@');
  const auto k =
      (static_cast<std::uint64_t>(session) + number) % static_cast<std::uint64_t>(o.senders);
  return o.from.substr(0, at) + "-" + std::to_string(k) + o.from.substr(at);
}

// RFC 4648 base64, for AUTH PLAIN's initial response (RFC 4616).
std::string base64(std::string_view in) {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    std::uint32_t chunk = static_cast<std::uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) chunk |= static_cast<std::uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) chunk |= static_cast<std::uint8_t>(in[i + 2]);
    out += alphabet[(chunk >> 18) & 63];
    out += alphabet[(chunk >> 12) & 63];
    out += i + 1 < in.size() ? alphabet[(chunk >> 6) & 63] : '=';
    out += i + 2 < in.size() ? alphabet[chunk & 63] : '=';
  }
  return out;
}

std::atomic<int> reported_failures{0};

void report_failure(int session, const std::string& what) {
  if (reported_failures.fetch_add(1) < max_reported_failures) {
    std::cerr << "smtp-load: session " << session << ": " << what << '\n';
  }
}

// A complete reply: code 0 means no reply (I/O error, timeout, garbage) and
// `text` says why.
struct reply {
  int code = 0;
  std::string text;  // every line, joined with '|'
  std::string describe() const { return code == 0 ? text : std::to_string(code) + " " + text; }
};

// One blocking TCP connection with poll() deadlines on every wait.
class connection {
 public:
  connection() = default;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;
  ~connection() { close(); }

  // Returns an empty string or why the connection could not be made.
  std::string open(const std::string& host, std::uint16_t port) {
    close();
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string service = std::to_string(port);
    if (int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
      return "resolve " + host + ": " + ::gai_strerror(rc);
    }
    std::string error = "no address for " + host;
    for (addrinfo* a = found; a != nullptr && fd_ < 0; a = a->ai_next) {
      error = connect_to(a);
    }
    ::freeaddrinfo(found);
    if (fd_ < 0) return error;
    // Latency is measured per command: never let Nagle hold back a short write.
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    buffer_.clear();
    return {};
  }

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool is_open() const { return fd_ >= 0; }

  // Returns an empty string or why not all of `bytes` could be sent.
  std::string send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      if (auto error = wait_for(POLLOUT); !error.empty()) return "send: " + error;
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) return std::string("send: ") + std::strerror(errno);
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }

  // Reads one reply, all lines of a multi-line one (RFC 5321 §4.2.1).
  reply read_reply() {
    reply r;
    for (;;) {
      std::string line;
      if (auto error = read_line(line); !error.empty()) return {0, error};
      if (line.size() < 3 ||
          !std::all_of(line.begin(), line.begin() + 3,
                       [](char c) { return c >= '0' && c <= '9'; }) ||
          (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        return {0, "malformed reply line: " + line};
      }
      const int code = std::stoi(line.substr(0, 3));
      if (r.code != 0 && code != r.code) return {0, "reply code changed inside a reply: " + line};
      r.code = code;
      if (!r.text.empty()) r.text += '|';
      r.text += line.size() > 4 ? line.substr(4) : std::string();
      if (line.size() == 3 || line[3] == ' ') return r;
    }
  }

 private:
  std::string connect_to(const addrinfo* a) {
    int fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return std::string("socket: ") + std::strerror(errno);
    if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      const std::string error = std::string("connect: ") + std::strerror(errno);
      ::close(fd);
      return error;
    }
    fd_ = fd;
    std::string error = wait_for(POLLOUT);
    int so_error = 0;
    socklen_t length = sizeof so_error;
    if (error.empty() && ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &length) == 0 &&
        so_error != 0) {
      error = std::strerror(so_error);
    }
    if (!error.empty()) {
      close();
      return "connect: " + error;
    }
    // Blocking from here on; poll() bounds every wait and MSG_DONTWAIT every send.
    const int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    return {};
  }

  std::string wait_for(short events) {
    const auto deadline = steady::now() + io_timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
      if (left <= 0) return "timed out after 30 s";
      pollfd p{fd_, events, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(left));
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return std::string("poll: ") + std::strerror(errno);
      if (ready > 0) return {};
    }
  }

  std::string read_line(std::string& line) {
    for (;;) {
      const auto newline = buffer_.find("\r\n", scanned_);
      if (newline != std::string::npos) {
        line.assign(buffer_, 0, newline);
        buffer_.erase(0, newline + 2);
        scanned_ = 0;
        return {};
      }
      scanned_ = buffer_.empty() ? 0 : buffer_.size() - 1;
      if (auto error = wait_for(POLLIN); !error.empty()) return "read: " + error;
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n < 0) return std::string("read: ") + std::strerror(errno);
      if (n == 0) return "connection closed by the server";
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int fd_ = -1;
  std::string buffer_;
  std::size_t scanned_ = 0;
};

// RFC 5322 §3.3 date-time, e.g. "Sun, 22 Nov 2026 04:15:26 +0000".
std::string rfc5322_date() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  char text[64];
  std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  return text;
}

// Builds messages of exactly `size` octets (headers, blank line and body; the
// final "." is extra). No body line starts with '.', so nothing is dot-stuffed.
class message_factory {
 public:
  message_factory(const options& o, std::string run_id)
      : options_(o), to_(o.to), size_(o.size), date_(rfc5322_date()), run_id_(std::move(run_id)) {
    static constexpr std::string_view alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    line_pool_.reserve(alphabet.size() * (body_line_length + 2));
    for (std::size_t shift = 0; shift < alphabet.size(); ++shift) {
      for (std::size_t i = 0; i < body_line_length; ++i) {
        line_pool_ += alphabet[(shift + i) % alphabet.size()];
      }
      line_pool_ += "\r\n";
    }
  }

  // The smallest --size a message can have: headers and two short body lines.
  std::size_t minimum_size() const { return headers(999999, 999999999).size() + 4; }

  // The message with its end-of-data line, ready for the wire.
  void build(int session, std::uint64_t number, std::string& out) const {
    out = headers(session, number);
    std::size_t left = size_ - std::min(size_, out.size());
    for (std::size_t line = 0; left > 0; ++line) {
      std::size_t length = std::min(body_line_length, left - 2);
      // Never leave a single octet: it cannot be a line of its own.
      if (left - (length + 2) == 1) --length;
      const std::size_t start =
          (line % (line_pool_.size() / (body_line_length + 2))) * (body_line_length + 2);
      out.append(line_pool_, start, length);
      out += "\r\n";
      left -= length + 2;
    }
    out += ".\r\n";
  }

 private:
  std::string headers(int session, std::uint64_t number) const {
    const std::string tag = std::to_string(session) + "." + std::to_string(number);
    return "From: <" + sender_of(options_, session, number) + ">\r\nTo: <" + to_ +
           ">\r\nSubject: smtp-load message " + tag + "\r\nDate: " + date_ + "\r\nMessage-ID: <" +
           run_id_ + "." + tag + "@smtp-load.invalid>\r\n\r\n";
  }

  const options& options_;
  std::string to_;
  std::size_t size_;
  std::string date_;
  std::string run_id_;
  std::string line_pool_;  // one 76-octet line per rotation of the alphabet
};

struct session_result {
  std::uint64_t accepted = 0;
  std::uint64_t failed = 0;
  std::vector<double> latencies_ms;  // final "." sent to its 250 received
};

class session {
 public:
  session(int index, std::uint64_t messages, const options& o, const message_factory& factory)
      : index_(index), messages_(messages), options_(o), factory_(factory) {
    result_.latencies_ms.reserve(messages);
  }

  session_result run() {
    std::uint64_t on_connection = 0;
    // Paced: each session starts a message every `interval`, sessions offset
    // from each other, so the server sees a steady rate, not bursts.
    const auto interval = options_.rate > 0
                              ? std::chrono::duration<double>(options_.sessions / options_.rate)
                              : std::chrono::duration<double>(0);
    auto next = steady::now() + std::chrono::duration_cast<steady::duration>(
                                    interval * index_ / std::max(1, options_.sessions));
    for (std::uint64_t n = 0; n < messages_; ++n) {
      if (options_.rate > 0) {
        std::this_thread::sleep_until(next);
        next += std::chrono::duration_cast<steady::duration>(interval);
      }
      if (options_.auth_only) {
        // Connect, EHLO, AUTH, QUIT: the cost of a login alone.
        if (auto error = start(); !error.empty()) {
          report_failure(index_, error);
          ++result_.failed;
        } else {
          ++result_.accepted;
          quit();
        }
        continue;
      }
      if (!connection_.is_open()) {
        on_connection = 0;
        if (auto error = start(); !error.empty()) {
          // A server that refuses a connection fails everything this session had left.
          report_failure(index_, error);
          result_.failed += messages_ - n;
          return std::move(result_);
        }
      }
      if (send_message(n)) {
        ++result_.accepted;
      } else {
        ++result_.failed;
      }
      if (options_.per_session != 0 && ++on_connection >= options_.per_session) quit();
    }
    quit();
    return std::move(result_);
  }

 private:
  std::string start() {
    if (auto error = connection_.open(options_.host, options_.port); !error.empty()) return error;
    if (auto r = connection_.read_reply(); r.code != 220) {
      connection_.close();
      return "greeting: " + r.describe();
    }
    if (auto error = connection_.send_all("EHLO smtp-load.invalid\r\n"); !error.empty()) {
      connection_.close();
      return error;
    }
    auto r = connection_.read_reply();
    if (r.code != 250) {
      connection_.close();
      return "EHLO: " + r.describe();
    }
    if (options_.pipeline && r.text.find("PIPELINING") == std::string::npos) {
      connection_.close();
      return "--pipeline, but the server does not advertise PIPELINING: " + r.describe();
    }
    if (!options_.auth.empty()) {
      const auto colon = options_.auth.find(':');
      const std::string user = options_.auth.substr(0, colon);
      const std::string password = options_.auth.substr(colon + 1);
      const std::string plain = std::string(1, '\0') + user + std::string(1, '\0') + password;
      if (auto error = connection_.send_all("AUTH PLAIN " + base64(plain) + "\r\n");
          !error.empty()) {
        connection_.close();
        return error;
      }
      if (auto a = connection_.read_reply(); a.code != 235) {
        connection_.close();
        return "AUTH: " + a.describe();
      }
    }
    return {};
  }

  void quit() {
    if (!connection_.is_open()) return;
    if (connection_.send_all("QUIT\r\n").empty()) {
      auto r = connection_.read_reply();
      if (r.code != 221) report_failure(index_, "QUIT: " + r.describe());
    }
    connection_.close();
  }

  // A reply the message cannot survive: reported, and the connection dropped
  // when it no longer follows the dialogue (no reply at all).
  bool fail(const std::string& step, const reply& r) {
    report_failure(index_, step + ": " + r.describe());
    if (r.code == 0) connection_.close();
    return false;
  }

  // RSET after a refused command, so the next message starts clean.
  bool refused(const std::string& step, const reply& r) {
    fail(step, r);
    if (connection_.is_open() && connection_.send_all("RSET\r\n").empty()) {
      if (connection_.read_reply().code != 250) connection_.close();
    } else {
      connection_.close();
    }
    return false;
  }

  bool send_message(std::uint64_t number) {
    factory_.build(index_, number, message_);
    const std::string mail = "MAIL FROM:<" + sender_of(options_, index_, number) + ">\r\n";
    const std::string rcpt = "RCPT TO:<" + options_.to + ">\r\n";
    const std::string data = "DATA\r\n";
    reply r;
    if (options_.pipeline) {
      // RFC 2920 §3.1: DATA may end a pipelined group; its 354 comes after the other replies.
      if (auto error = connection_.send_all(mail + rcpt + data); !error.empty()) {
        return fail("MAIL/RCPT/DATA", {0, error});
      }
      const reply mail_reply = connection_.read_reply();
      if (mail_reply.code == 0) return fail("MAIL", mail_reply);
      const reply rcpt_reply = connection_.read_reply();
      if (rcpt_reply.code == 0) return fail("RCPT", rcpt_reply);
      r = connection_.read_reply();
      if (r.code == 0) return fail("DATA", r);
      if (r.code == 354 && (mail_reply.code != 250 || rcpt_reply.code != 250)) {
        // The server wants content it cannot accept: give it an empty message.
        connection_.send_all(".\r\n");
        connection_.read_reply();
      }
      if (mail_reply.code != 250) return refused("MAIL", mail_reply);
      if (rcpt_reply.code != 250) return refused("RCPT", rcpt_reply);
      if (r.code != 354) return refused("DATA", r);
    } else {
      struct command_step {
        const char* name;
        const std::string& text;
        int expected;
      };
      for (const command_step& step :
           {command_step{"MAIL", mail, 250}, {"RCPT", rcpt, 250}, {"DATA", data, 354}}) {
        if (auto error = connection_.send_all(step.text); !error.empty()) {
          return fail(step.name, {0, error});
        }
        r = connection_.read_reply();
        if (r.code == 0) return fail(step.name, r);
        if (r.code != step.expected) return refused(step.name, r);
      }
    }
    if (auto error = connection_.send_all(message_); !error.empty()) {
      return fail("message content", {0, error});
    }
    // send_all returns once the final "." is with the kernel: latency starts here.
    const auto sent = steady::now();
    r = connection_.read_reply();
    const auto answered = steady::now();
    // Any reply ends the transaction; only 250 means the message was taken.
    if (r.code != 250) return fail("end of data", r);
    result_.latencies_ms.push_back(
        std::chrono::duration<double, std::milli>(answered - sent).count());
    return true;
  }

  int index_;
  std::uint64_t messages_;
  const options& options_;
  const message_factory& factory_;
  connection connection_;
  std::string message_;
  session_result result_;
};

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

int run(const options& o) {
  const auto run_id = std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  const message_factory factory(o, run_id);
  if (o.size < factory.minimum_size()) {
    std::cerr << "smtp-load: --size must be at least " << factory.minimum_size()
              << " to hold the headers\n";
    return 2;
  }

  std::vector<session_result> results(static_cast<std::size_t>(o.sessions));
  std::vector<std::thread> threads;
  const auto started = steady::now();
  for (int i = 0; i < o.sessions; ++i) {
    const auto count = static_cast<std::uint64_t>(o.sessions);
    const auto index = static_cast<std::uint64_t>(i);
    const std::uint64_t share = o.messages / count + (index < o.messages % count ? 1 : 0);
    if (share == 0) continue;
    threads.emplace_back([&, i, share] {
      session s(i, share, o, factory);
      results[static_cast<std::size_t>(i)] = s.run();
    });
  }
  for (auto& t : threads) t.join();
  const double seconds = std::chrono::duration<double>(steady::now() - started).count();

  std::uint64_t accepted = 0;
  std::uint64_t failed = 0;
  std::vector<double> latencies;
  latencies.reserve(o.messages);
  for (const auto& r : results) {
    accepted += r.accepted;
    failed += r.failed;
    latencies.insert(latencies.end(), r.latencies_ms.begin(), r.latencies_ms.end());
  }
  std::sort(latencies.begin(), latencies.end());
  std::printf("accepted=%llu failed=%llu seconds=%.3f rate=%.1f msg/s p50_ms=%.2f p99_ms=%.2f\n",
              static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(failed),
              seconds, seconds > 0 ? static_cast<double>(accepted) / seconds : 0.0,
              percentile(latencies, 0.50), percentile(latencies, 0.99));
  return failed == 0 ? 0 : 1;
}

}  // namespace
}  // namespace oauth_relay::bench

int main(int argc, char** argv) {
  oauth_relay::bench::options o;
  CLI::App app{"smtp-load: parallel SMTP sessions against a relay, with throughput and latency"};
  app.add_option("--host", o.host, "server address or name")->capture_default_str();
  app.add_option("--port", o.port, "server port")->required();
  app.add_option("--sessions", o.sessions, "parallel sessions (one thread each)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--messages", o.messages, "messages in total")->required();
  app.add_option("--size", o.size, "octets per message, headers included")->capture_default_str();
  app.add_option("--per-session", o.per_session,
                 "messages per connection before QUIT (default: all on one)");
  app.add_option("--rate", o.rate, "messages per second in all (0: as fast as possible)")
      ->capture_default_str();
  app.add_flag("--pipeline", o.pipeline, "send MAIL, RCPT and DATA in one write (RFC 2920)");
  app.add_option("--from", o.from, "envelope sender and From:")->capture_default_str();
  app.add_option("--senders", o.senders,
                 "more than 1: that many senders made from --from (LOCAL-K@DOMAIN), in turn")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--to", o.to, "envelope recipient and To:")->capture_default_str();
  app.add_option("--auth", o.auth, "USER:PASSWORD for AUTH PLAIN on every connection");
  app.add_flag("--auth-only", o.auth_only,
               "each of --messages is a connection that logs in (--auth) and quits");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }
  return oauth_relay::bench::run(o);
}
