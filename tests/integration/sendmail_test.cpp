// oauth-relay-sendmail against the real oauth-relayd: what lands in the spool
// (envelope and exact bytes) for -t, -f/-F, recipients as arguments and the
// lone-dot rule, the exit statuses a caller relies on, every address
// injection shape refused with nothing stored, and the unix listener.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <mutex>
#include <regex>
#include <thread>

#include "integration/support/relay_process.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::string_literals;

std::string sendmail_path() {
  return OAUTH_RELAY_SENDMAIL_PATH;
}

std::string login() {
  return ::getpwuid(::getuid())->pw_name;
}

// A port nobody listens on: bound, read, closed.
std::uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}

// A stand-in for the daemon on a unix socket: accepts, answers a plain SMTP
// dialogue with 2xx/3xx replies, and records every line it is sent. (In
// this branch oauth-relayd does not listen on unix sockets yet; once it
// does, the unix tests below belong against the real daemon.)
class unix_smtp_stand_in {
 public:
  explicit unix_smtp_stand_in(std::filesystem::path path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path_.c_str(), sizeof address.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd_, 8) != 0) {
      throw std::runtime_error("cannot listen on " + path_.string());
    }
    thread_ = std::thread([this] { serve(); });
  }
  ~unix_smtp_stand_in() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  int connections() const { return connections_; }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int client = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      ++connections_;
      timeval limit{10, 0};
      ::setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
      session(client);
      ::close(client);
    }
  }

  void session(int client) {
    auto say = [&](std::string_view text) {
      ::send(client, text.data(), text.size(), MSG_NOSIGNAL);
    };
    say("220 stand-in ESMTP\r\n");
    std::string buffer;
    bool data = false;
    for (;;) {
      const auto eol = buffer.find("\r\n");
      if (eol == std::string::npos) {
        char chunk[4096];
        const ssize_t n = ::recv(client, chunk, sizeof chunk, 0);
        if (n <= 0) return;
        buffer.append(chunk, static_cast<std::size_t>(n));
        continue;
      }
      const std::string line = buffer.substr(0, eol);
      buffer.erase(0, eol + 2);
      {
        std::lock_guard lock(mutex_);
        lines_.push_back(line);
      }
      if (data) {
        if (line == ".") {
          data = false;
          say("250 2.0.0 Ok: queued\r\n");
        }
      } else if (line.starts_with("EHLO")) {
        say("250-stand-in\r\n250-SIZE 35882577\r\n250 8BITMIME\r\n");
      } else if (line == "DATA") {
        data = true;
        say("354 End data with <CR><LF>.<CR><LF>\r\n");
      } else if (line == "QUIT") {
        say("221 2.0.0 Bye\r\n");
        return;
      } else {
        say("250 2.0.0 Ok\r\n");
      }
    }
  }

  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
  std::thread thread_;
};

class sendmail : public testing::Test {
 protected:
  // The relay with `body` as its config; sendmail gets a config naming the
  // port the relay bound (its own config says port 0).
  void start(const std::string& body = minimal_config_body()) {
    relay_ = std::make_unique<relay_process>(body);
    relay_->start();
    write_sendmail_config(relay_->port());
  }

  void write_sendmail_config(std::uint16_t port) {
    config_ = relay_ ? relay_->dir() / "sendmail.yaml" : scratch_.path() / "sendmail.yaml";
    std::ofstream(config_) << "listen: [\"127.0.0.1:" << port << "\"]\nhostname: relay.test\n";
  }

  command_result run(std::vector<std::string> args, const std::string& input) {
    std::vector<std::string> argv = {sendmail_path(), "-c", config_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, input);
  }

  // The only queued message.
  relay::queued_message queued() {
    relay::spool_reader reader(relay_->state_dir());
    auto all = reader.messages().value();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? relay::queued_message{} : all.front();
  }

  std::vector<relay::queued_message> all_queued() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value();
  }

  std::string content(const std::string& id) {
    relay::spool_reader reader(relay_->state_dir());
    auto content = reader.content(id);
    return content ? *content : std::string();
  }

  static std::vector<std::string> addresses(const relay::queued_message& m) {
    std::vector<std::string> out;
    for (const auto& r : m.recipients) out.push_back(r.rcpt.address);
    return out;
  }

  // The content without the relay's Received: header.
  static std::string after_received(const std::string& content) {
    EXPECT_EQ(content.rfind("Received: ", 0), 0u) << content;
    std::size_t at = 0;
    do {
      at = content.find("\r\n", at) + 2;
    } while (at < content.size() && (content[at] == '\t' || content[at] == ' '));
    return content.substr(at);
  }

  temp_dir scratch_;
  std::unique_ptr<relay_process> relay_;
  std::filesystem::path config_;
};

TEST_F(sendmail, t_takes_to_cc_and_bcc_and_the_bcc_field_never_leaves) {
  start();
  const std::string header =
      "From: sender@example.com\n"
      "To: \"Doe, Alice\" <alice@example.org>,\n"
      "\tbob@example.org (Bob)\n"
      "Cc: team: carol@example.org, Dan <dan@example.org>;\n"
      "Bcc: hidden@example.org\n"
      "Subject: -t test\n"
      "Date: Mon, 30 Nov 2026 08:00:00 +0000\n"
      "Message-ID: <t-test@example.com>\n";
  auto r = run({"-t", "-i"}, header + "\nline one\n.\n..leading dots\nlast\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out, "");
  auto m = queued();
  EXPECT_EQ(m.env.sender, login() + "@relay.test");
  EXPECT_EQ(addresses(m),
            (std::vector<std::string>{"alice@example.org", "bob@example.org", "carol@example.org",
                                      "dan@example.org", "hidden@example.org"}));
  EXPECT_EQ(after_received(content(m.id)),
            "From: sender@example.com\r\n"
            "To: \"Doe, Alice\" <alice@example.org>,\r\n"
            "\tbob@example.org (Bob)\r\n"
            "Cc: team: carol@example.org, Dan <dan@example.org>;\r\n"
            "Subject: -t test\r\n"
            "Date: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
            "Message-ID: <t-test@example.com>\r\n"
            "\r\n"
            "line one\r\n"
            ".\r\n"
            "..leading dots\r\n"
            "last\r\n");
  EXPECT_EQ(content(m.id).find("hidden"), std::string::npos);
}

TEST_F(sendmail, f_sets_the_sender_and_arguments_the_recipients_and_a_from_is_added) {
  start();
  auto r = run(
      {"-f", "app@example.com", "-F", "The App", "-odi", "-oem", "x@example.org", "y@example.org"},
      "Subject: from -f\n\nbody \xc3\xa9\n");
  ASSERT_EQ(r.status, 0) << r.err;
  auto m = queued();
  EXPECT_EQ(m.env.sender, "app@example.com");
  EXPECT_EQ(addresses(m), (std::vector<std::string>{"x@example.org", "y@example.org"}));
  EXPECT_EQ(m.env.params.body, smtp::body_type::eight_bit_mime);  // announced for the é
  const auto text = after_received(content(m.id));
  EXPECT_TRUE(std::regex_match(
      text, std::regex("Subject: from -f\r\n"
                       "From: The App <app@example\\.com>\r\n"
                       "Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d{1,2} [A-Z][a-z]{2} \\d{4} "
                       "\\d\\d:\\d\\d:\\d\\d [+-]\\d{4}\r\n"
                       "Message-ID: <[0-9a-f]+\\.[0-9a-f]{16}@relay\\.test>\r\n"
                       "\r\n"
                       "body \xc3\xa9\r\n")))
      << text;
}

TEST_F(sendmail, a_lone_dot_ends_the_message_without_i) {
  start();
  auto r = run({"-f", "sender@example.com", "to@example.org"},
               "Subject: dot\nDate: x\nMessage-ID: <d@x>\nFrom: s@x\n\nbefore\n.\nafter\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(after_received(content(queued().id)),
            "Subject: dot\r\nDate: x\r\nMessage-ID: <d@x>\r\nFrom: s@x\r\n\r\nbefore\r\n");
}

TEST_F(sendmail, daemon_down_exits_75_and_says_so) {
  const auto port = closed_port();
  write_sendmail_config(port);
  auto r = run({"-t"}, "To: a@example.org\nSubject: lost?\n\nno\n");
  EXPECT_EQ(r.status, 75);
  EXPECT_EQ(r.err, "oauth-relay-sendmail: cannot connect to the relay at 127.0.0.1:" +
                       std::to_string(port) +
                       ": Connection refused (is oauth-relayd running? systemctl status "
                       "oauth-relay); the message was not sent\n");
}

TEST_F(sendmail, unreadable_config_falls_back_to_port_25_and_says_why_when_that_fails) {
  config_ = scratch_.path() / "missing.yaml";
  auto r = run({"a@example.org"}, "Subject: x\n\ny\n");
  if (r.status == 0) GTEST_SKIP() << "something accepts mail on 127.0.0.1:25 on this machine";
  EXPECT_EQ(r.status, 75);
  EXPECT_NE(r.err.find("cannot connect to the relay at 127.0.0.1:25: "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("; " + config_.string() +
                       " is not readable (No such file or directory), so the default "
                       "127.0.0.1:25 was used; the message was not sent\n"),
            std::string::npos)
      << r.err;
}

// sendmail reads `listen` as the daemon does (config::parse_listen) and
// reaches a wildcard listener on loopback.
TEST_F(sendmail, a_wildcard_listen_address_is_reached_on_loopback) {
  start();
  std::ofstream(config_) << "listen: [\"0.0.0.0:" << relay_->port()
                         << "\"]\nhostname: relay.test\n";
  auto r = run({"-f", "sender@example.com", "to@example.org"}, "Subject: w\n\nwild\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(addresses(queued()), std::vector<std::string>{"to@example.org"});
}

TEST_F(sendmail, a_listen_entry_the_daemon_would_refuse_falls_back_and_says_so) {
  config_ = scratch_.path() / "sendmail.yaml";
  std::ofstream(config_) << "listen: [\"localhost:2525\"]\n";
  auto r = run({"a@example.org"}, "Subject: x\n\ny\n");
  if (r.status == 0) GTEST_SKIP() << "something accepts mail on 127.0.0.1:25 on this machine";
  EXPECT_EQ(r.status, 75);
  EXPECT_NE(r.err.find("cannot connect to the relay at 127.0.0.1:25: "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("; " + config_.string() +
                       ": the first `listen` address is not HOST:PORT, so 127.0.0.1:25 was used; "
                       "the message was not sent\n"),
            std::string::npos)
      << r.err;
}

TEST_F(sendmail, a_refused_sender_exits_69_with_the_reply) {
  start(
      "hostname: relay.test\n"
      "oauth:\n  client_id: \"test-client.apps.googleusercontent.com\"\n"
      "  client_secret: \"x\"\n"
      "accounts:\n  - address: only@example.com\n    senders: [\"only@example.com\"]\n");
  auto r = run({"-f", "stranger@example.net", "a@example.org"}, "Subject: x\n\ny\n");
  EXPECT_EQ(r.status, 69);
  EXPECT_EQ(
      r.err.rfind("oauth-relay-sendmail: the relay at 127.0.0.1:" + std::to_string(relay_->port()) +
                      " refused the message (sender <stranger@example.net>): 550 5.7.1 ",
                  0),
      0u)
      << r.err;
  relay::spool_reader reader(relay_->state_dir());
  EXPECT_TRUE(reader.messages().value().empty());
}

TEST_F(sendmail, a_temporary_refusal_exits_75_and_stores_nothing) {
  start("limits:\n  max_recipients: 1\n" + minimal_config_body());
  auto r = run({"-f", "sender@example.com", "a@example.org", "b@example.org"}, "Subject: x\n\ny\n");
  EXPECT_EQ(r.status, 75);
  EXPECT_EQ(
      r.err.rfind("oauth-relay-sendmail: the relay at 127.0.0.1:" + std::to_string(relay_->port()) +
                      " cannot take the message now (recipient <b@example.org>): 452 4.5.3 ",
                  0),
      0u)
      << r.err;
  EXPECT_EQ(r.err.substr(r.err.size() - 18), "; try again later\n");
  relay::spool_reader reader(relay_->state_dir());
  EXPECT_TRUE(reader.messages().value().empty());  // all or nothing: a retry cannot duplicate
}

TEST_F(sendmail, usage_errors_exit_2_and_nothing_is_read) {
  write_sendmail_config(25);
  auto unknown = run({"-q", "a@example.org"}, "");
  EXPECT_EQ(unknown.status, 2);
  EXPECT_EQ(unknown.err.substr(0, unknown.err.find('\n')),
            "oauth-relay-sendmail: unknown option -q");
  auto none = run({}, "");
  EXPECT_EQ(none.status, 2);
  auto version = run_command({sendmail_path(), "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out, "oauth-relay-sendmail 0.1.0\n");
  auto help = run_command({sendmail_path(), "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_EQ(help.out.rfind("Usage: oauth-relay-sendmail ", 0), 0u);
}

TEST_F(sendmail, t_without_any_recipient_exits_65) {
  write_sendmail_config(25);
  auto r = run({"-t"}, "To: undisclosed-recipients:;\nSubject: x\n\ny\n");
  EXPECT_EQ(r.status, 65);
  EXPECT_EQ(r.err,
            "oauth-relay-sendmail: no recipients found in the To:, Cc: or Bcc: fields; nothing "
            "was sent\n");
}

// --- addresses: every injection shape exits 64 and nothing is stored ------

// The issue's example: a web application passing a visitor's address as -f.
TEST_F(sendmail, the_issue_example_exits_64_and_nothing_reaches_the_spool) {
  start();
  auto r = run({"-f", "a@example.com>\r\nRCPT TO:<x@evil.example", "to@example.org"},
               "Subject: x\n\ny\n");
  EXPECT_EQ(r.status, 64);
  EXPECT_EQ(r.err,
            "oauth-relay-sendmail: bad sender address (-f) \"a@example.com>\\x0d\\x0aRCPT "
            "TO:<x@evil.example\": it contains a line break (CR or LF); nothing was sent\n");
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(all_queued().empty());
}

struct injection {
  std::string name;
  std::string text;
  std::string reason;
};

// The shapes as a caller passes them (an argument cannot hold a NUL: that
// one is in the header table below).
std::vector<injection> injections() {
  const std::string long_domain = std::string(62, 'd') + "." + std::string(62, 'd') + "." +
                                  std::string(62, 'd') + "." + std::string(62, 'd') + "." +
                                  std::string(4, 'd');  // 256 octets
  return {
      {"cr", "a@example.com\rRCPT TO:<x@evil.example>", "it contains a line break (CR or LF)"},
      {"lf", "a@example.com\nRCPT TO:<x@evil.example>", "it contains a line break (CR or LF)"},
      {"crlf_command", "a@example.com>\r\nRCPT TO:<x@evil.example",
       "it contains a line break (CR or LF)"},
      {"closing_angle", "a@example.com> SIZE=1", "it has a '>' without a '<' before it"},
      {"opening_angle", "a@example.com<x@evil.example", "it has a '<' without its '>'"},
      {"space", "a b@example.com", "it has a space or tab outside quotes"},
      {"tab", "a\tb@example.com", "it has a space or tab outside quotes"},
      {"long_local_part", std::string(65, 'l') + "@example.com",
       "its local part is longer than 64 octets (RFC 5321 §4.5.3.1.1)"},
      {"long_domain", "a@" + long_domain,
       "its domain is longer than 255 octets (RFC 5321 §4.5.3.1.2)"},
      {"long_path", std::string(60, 'l') + "@" + long_domain.substr(0, 200),
       "it is longer than 254 octets, the most a path of 256 holds (RFC 5321 §4.5.3.1.3)"},
      {"empty_angles", "<>", "it has an empty address <>"},
  };
}

// An address as the error message shows it: control characters as \xNN,
// and cut after 200 bytes with "...".
std::string escaped_for_message(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\r') {
      out += "\\x0d";
    } else if (c == '\n') {
      out += "\\x0a";
    } else if (c == '\t') {
      out += "\\x09";
    } else if (c == '\0') {
      out += "\\x00";
    } else {
      out += c;
    }
  }
  return out.size() > 200 ? out.substr(0, 200) + "..." : out;
}

TEST_F(sendmail, every_injection_shape_in_f_exits_64_and_stores_nothing) {
  start();
  for (const auto& i : injections()) {
    if (i.name == "empty_angles") continue;  // -f '<>' is the null sender
    auto r = run({"-f", i.text, "to@example.org"}, "Subject: x\n\ny\n");
    EXPECT_EQ(r.status, 64) << i.name;
    EXPECT_EQ(r.err, "oauth-relay-sendmail: bad sender address (-f) \"" +
                         escaped_for_message(i.text) + "\": " + i.reason + "; nothing was sent\n")
        << i.name;
  }
  EXPECT_TRUE(all_queued().empty());
}

TEST_F(sendmail, every_injection_shape_in_a_recipient_exits_64_and_stores_nothing) {
  start();
  auto shapes = injections();
  shapes.push_back({"empty", "", "it is empty"});
  for (const auto& i : shapes) {
    auto r = run({"-f", "sender@example.com", "to@example.org", i.text}, "Subject: x\n\ny\n");
    EXPECT_EQ(r.status, 64) << i.name;
    EXPECT_EQ(r.err, "oauth-relay-sendmail: bad recipient address \"" +
                         escaped_for_message(i.text) + "\": " + i.reason + "; nothing was sent\n")
        << i.name;
  }
  EXPECT_TRUE(all_queued().empty());
}

TEST_F(sendmail, every_injection_shape_in_a_t_header_exits_64_and_stores_nothing) {
  start();
  auto shapes = injections();
  shapes.push_back({"nul", "a@example.com\0RCPT TO:<x@evil.example>"s, "it contains a NUL byte"});
  for (const auto& i : shapes) {
    // In a header an LF (or CRLF) ends the field; only a bare CR stays in it.
    if (i.text.find('\n') != std::string::npos) continue;
    for (const std::string& field : {"To"s, "Cc"s, "Bcc"s}) {
      auto r = run({"-t", "-f", "sender@example.com"},
                   "To: ok@example.org\n" + field + ": " + i.text + "\nSubject: x\n\ny\n");
      EXPECT_EQ(r.status, 64) << i.name << " " << field;
      EXPECT_EQ(r.err, "oauth-relay-sendmail: bad address in the " + field + ": field \"" +
                           escaped_for_message(" " + i.text) + "\": " + i.reason +
                           "; nothing was sent\n")
          << i.name << " " << field;
    }
  }
  // The issue's value as a To: line: the CRLF ends the field there.
  auto r = run({"-t"}, "To: a@example.com>\r\nRCPT TO:<x@evil.example\r\n\r\ny\r\n");
  EXPECT_EQ(r.status, 64);
  EXPECT_EQ(r.err,
            "oauth-relay-sendmail: bad address in the To: field \" a@example.com>\": it has a '>' "
            "without a '<' before it; nothing was sent\n");
  EXPECT_TRUE(all_queued().empty());
}

// What is refused is refused before any connection: the relay (a stand-in
// that counts them) never hears of it.
TEST_F(sendmail, a_refused_address_opens_no_connection) {
  unix_smtp_stand_in stand_in(scratch_.path() / "smtp.sock");
  config_ = scratch_.path() / "sendmail.yaml";
  std::ofstream(config_) << "listen: [\"unix:" << (scratch_.path() / "smtp.sock").string()
                         << "\"]\nhostname: relay.test\n";
  EXPECT_EQ(
      run({"-f", "a@example.com>\r\nRCPT TO:<x@evil.example", "to@example.org"}, "x\n").status, 64);
  EXPECT_EQ(run({"to@example.org", "a b@example.com"}, "x\n").status, 64);
  EXPECT_EQ(run({"-t"}, "To: a@example.com\rRCPT TO:<x@evil.example>\n\nx\n").status, 64);
  EXPECT_EQ(stand_in.connections(), 0);
  // The same config with a good address does connect: the count can move.
  EXPECT_EQ(run({"-f", "sender@example.com", "to@example.org"}, "x\n").status, 0);
  EXPECT_EQ(stand_in.connections(), 1);
}

// Valid forms a caller writes reach the daemon as bare mailboxes.
TEST_F(sendmail, display_names_quoted_local_parts_and_local_names_reach_the_daemon) {
  // root is qualified (root@relay.test), then the daemon replaces it by its alias.
  start("aliases:\n  root: [admin@example.org]\n" + minimal_config_body());
  auto r = run({"-f", "\"The App\" <sender@example.com>", "Ops <ops@example.org>, dev@example.org",
                "\"john doe\"@example.org", "root"},
               "Subject: forms\nFrom: sender@example.com\n\ny\n");
  ASSERT_EQ(r.status, 0) << r.err;
  auto m = queued();
  EXPECT_EQ(m.env.sender, "sender@example.com");
  EXPECT_EQ(addresses(m),
            (std::vector<std::string>{"ops@example.org", "dev@example.org",
                                      "\"john doe\"@example.org", "admin@example.org"}));
}

// --- the unix listener ------------------------------------------------------

TEST_F(sendmail, a_unix_listener_is_used_before_tcp) {
  const auto socket_path = scratch_.path() / "smtp.sock";
  unix_smtp_stand_in stand_in(socket_path);
  config_ = scratch_.path() / "sendmail.yaml";
  // TCP first in the list, and nobody there: the unix listener still goes first.
  std::ofstream(config_) << "listen: [\"127.0.0.1:" << closed_port()
                         << "\", \"unix:" << socket_path.string() << "\"]\nhostname: relay.test\n";
  auto r = run({"-f", "sender@example.com", "to@example.org"},
               "Subject: u\nFrom: s@example.com\nDate: d\nMessage-ID: <m@x>\n\n.dot\nbody\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(stand_in.connections(), 1);
  auto lines = stand_in.lines();
  ASSERT_EQ(lines.size(), 13u);
  EXPECT_EQ(lines[0].rfind("EHLO ", 0), 0u);
  EXPECT_TRUE(std::regex_match(lines[1], std::regex("MAIL FROM:<sender@example\\.com> SIZE=\\d+")))
      << lines[1];
  EXPECT_EQ(std::vector<std::string>(lines.begin() + 2, lines.end()),
            (std::vector<std::string>{"RCPT TO:<to@example.org>", "DATA", "Subject: u",
                                      "From: s@example.com", "Date: d", "Message-ID: <m@x>", "",
                                      "..dot", "body", ".", "QUIT"}));
}

// The same with the real daemon: the message comes in over its unix
// listener, so the daemon knows the submitting user (uid 0, the test's).
TEST_F(sendmail, the_daemon_knows_the_user_who_submitted_over_its_unix_listener) {
  const auto socket_path = scratch_.path() / "relay.sock";
  relay_ = std::make_unique<relay_process>(
      minimal_config_body(), "[\"127.0.0.1:0\", \"unix:" + socket_path.string() + "\"]");
  relay_->start();
  config_ = scratch_.path() / "sendmail.yaml";
  std::ofstream(config_) << "listen: [\"127.0.0.1:" << closed_port()
                         << "\", \"unix:" << socket_path.string() << "\"]\nhostname: relay.test\n";
  auto r = run({"-f", "sender@example.com", "to@example.org"}, "Subject: u\n\nbody\n");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto m = queued();
  EXPECT_EQ(addresses(m), std::vector<std::string>{"to@example.org"});
  const auto text = content(m.id);
  EXPECT_NE(text.find("(unix socket uid 0)"), std::string::npos) << text;
  // oauth-relay-sendmail adds From:, Date: and Message-ID: after the headers given.
  EXPECT_EQ(after_received(text).rfind("Subject: u\r\nFrom: sender@example.com\r\n", 0), 0u);
}

TEST_F(sendmail, a_unix_listener_that_is_not_there_falls_back_to_tcp) {
  start();
  // As with socket activation, which hands the daemon only its TCP sockets.
  std::ofstream(config_) << "listen: [\"unix:" << (scratch_.path() / "absent.sock").string()
                         << "\", \"127.0.0.1:" << relay_->port() << "\"]\nhostname: relay.test\n";
  auto r = run({"-f", "sender@example.com", "to@example.org"}, "Subject: f\n\nfallback\n");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(addresses(queued()), std::vector<std::string>{"to@example.org"});
}

TEST_F(sendmail, unix_and_tcp_both_unreachable_exits_75_naming_both) {
  const auto socket_path = scratch_.path() / "absent.sock";
  const auto port = closed_port();
  config_ = scratch_.path() / "sendmail.yaml";
  std::ofstream(config_) << "listen: [\"unix:" << socket_path.string() << "\", \"127.0.0.1:" << port
                         << "\"]\n";
  auto r = run({"a@example.org"}, "Subject: x\n\ny\n");
  EXPECT_EQ(r.status, 75);
  EXPECT_EQ(r.err,
            "oauth-relay-sendmail: cannot connect to the relay at unix:" + socket_path.string() +
                ": No such file or directory, nor at 127.0.0.1:" + std::to_string(port) +
                ": Connection refused (is oauth-relayd running? systemctl status "
                "oauth-relay); the message was not sent\n");

  // Only a unix listener configured: no TCP address is guessed.
  std::ofstream(config_) << "listen: [\"unix:" << socket_path.string() << "\"]\n";
  r = run({"a@example.org"}, "Subject: x\n\ny\n");
  EXPECT_EQ(r.status, 75);
  EXPECT_EQ(r.err,
            "oauth-relay-sendmail: cannot connect to the relay at unix:" + socket_path.string() +
                ": No such file or directory (is oauth-relayd running? systemctl status "
                "oauth-relay); the message was not sent\n");
}

}  // namespace
}  // namespace oauth_relay::test_support
