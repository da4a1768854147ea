// oauth-relay-sendmail against the real oauth-relayd: what lands in the spool
// (envelope and exact bytes) for -t, -f/-F, recipients as arguments and the
// lone-dot rule, and the exit statuses a caller relies on.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "integration/support/relay_process.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

std::string sendmail_path() {
  return OAUTH_RELAY_SENDMAIL_PATH;
}

std::string login() {
  return ::getpwuid(::getuid())->pw_name;
}

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
  // A port nobody listens on: bound, read, closed.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  const auto port = ntohs(address.sin_port);
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

}  // namespace
}  // namespace oauth_relay::test_support
