// The real oauth-relayd on loopback, driven by the test client and by swaks:
// what is accepted is in the spool byte for byte; limits and timeouts answer
// with their documented codes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <thread>

#include "integration/support/google_fakes.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;

std::string stored_content(const relay_process& relay, const std::string& id) {
  relay::spool_reader reader(relay.state_dir());
  auto content = reader.content(id);
  return content ? *content : std::string("<missing>");
}

// The Received header ends at the first CRLF not followed by a tab.
std::string after_received(const std::string& content) {
  EXPECT_EQ(content.rfind("Received: from ", 0), 0u) << content;
  std::size_t at = 0;
  for (;;) {
    at = content.find("\r\n", at);
    if (at == std::string::npos) return content;
    at += 2;
    if (at >= content.size() || content[at] != '\t') return content.substr(at);
  }
}

class smtp_listener : public testing::Test {
 protected:
  void start(std::string body = minimal_config_body()) {
    relay_ = std::make_unique<relay_process>(body);
    relay_->start();
  }
  std::unique_ptr<relay_process> relay_;
};

TEST_F(smtp_listener, message_is_stored_byte_for_byte_with_received_header) {
  start();
  smtp_client client(relay_->port());
  // A complete header: the relay adds nothing to it.
  const std::string sent =
      "From: a@example.com\r\nSubject: dots\r\nDate: Tue, 1 Dec 2026 12:00:00 +0000\r\n"
      "Message-ID: <dots@client.test>\r\n\r\n"
      "..leading dot was stuffed\r\n"
      "...two\r\n"
      "8bit: \xc3\xa9t\xc3\xa9\r\n"
      "\r\n"
      "last line\r\n";
  auto reply = client.send_message("sender@example.com", {"rcpt@example.org"}, sent);
  ASSERT_EQ(reply.code, 250) << reply.str();
  const auto id = queued_id(reply);
  ASSERT_EQ(id.size(), 16u);
  const auto content = stored_content(*relay_, id);
  EXPECT_EQ(after_received(content),
            "From: a@example.com\r\nSubject: dots\r\nDate: Tue, 1 Dec 2026 12:00:00 +0000\r\n"
            "Message-ID: <dots@client.test>\r\n\r\n"
            ".leading dot was stuffed\r\n"
            "..two\r\n"
            "8bit: \xc3\xa9t\xc3\xa9\r\n"
            "\r\n"
            "last line\r\n");
  // The uid is the test's own: the owner of the client socket on loopback.
  EXPECT_EQ(
      content.rfind("Received: from client.test ([127.0.0.1] uid " + std::to_string(::getuid()) +
                        ")\r\n\tby relay.test "
                        "(oauth-relay) with ESMTP id " +
                        id + "\r\n\tfor <rcpt@example.org>; ",
                    0),
      0u)
      << content;
  relay::spool_reader reader(relay_->state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].env.sender, "sender@example.com");
  EXPECT_EQ(messages[0].env.account, "sender@example.com");
  ASSERT_EQ(messages[0].recipients.size(), 1u);
  EXPECT_EQ(messages[0].recipients[0].rcpt.address, "rcpt@example.org");
}

TEST_F(smtp_listener, smuggled_end_of_data_never_ends_the_message) {
  start();
  smtp_client client(relay_->port());
  // Each of these would end DATA on a lax server and start a second message.
  const std::string smuggled =
      "Subject: smuggle\r\n\r\nbefore\r\n"
      "\n.\nMAIL FROM:<evil@example.com>\r\n"
      "\r.\rRCPT TO:<victim@example.org>\r\n"
      "\r\n.\nDATA\r\n"
      "\n.\r\nafter\r\n";
  auto reply = client.send_message("sender@example.com", {"rcpt@example.org"}, smuggled);
  ASSERT_EQ(reply.code, 250) << reply.str();
  EXPECT_EQ(without_added_fields(after_received(stored_content(*relay_, queued_id(reply))),
                                 queued_id(reply)),
            "Subject: smuggle\r\n\r\nbefore\r\n"
            "\r\n\r\nMAIL FROM:<evil@example.com>\r\n"
            "\r\n\r\nRCPT TO:<victim@example.org>\r\n"
            "\r\n\r\nDATA\r\n"
            "\r\n\r\nafter\r\n");
  relay::spool_reader reader(relay_->state_dir());
  EXPECT_EQ(reader.messages().value().size(), 1u);
  EXPECT_EQ(client.command("QUIT").code, 221);
}

TEST_F(smtp_listener, pipelined_transactions_get_replies_in_order) {
  start();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO pipeliner").code, 250);
  client.send(
      "MAIL FROM:<sender@example.com>\r\nRCPT TO:<a@example.org>\r\nRCPT TO:<bad address>\r\n"
      "RCPT TO:<b@example.org>\r\nDATA\r\n");
  EXPECT_EQ(client.read_reply().str(), "250 2.1.0 Ok");
  EXPECT_EQ(client.read_reply().str(), "250 2.1.5 Ok");
  EXPECT_EQ(client.read_reply().code, 501);
  EXPECT_EQ(client.read_reply().str(), "250 2.1.5 Ok");
  EXPECT_EQ(client.read_reply().code, 354);
  // The message, its end, and the next transaction in one write.
  client.send(
      "Subject: one\r\n\r\nfirst\r\n.\r\nMAIL FROM:<sender@example.com>\r\n"
      "RCPT TO:<c@example.org>\r\nDATA\r\n");
  auto first = client.read_reply();
  EXPECT_EQ(first.code, 250) << first.str();
  EXPECT_EQ(client.read_reply().code, 250);
  EXPECT_EQ(client.read_reply().code, 250);
  EXPECT_EQ(client.read_reply().code, 354);
  client.send("Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n");
  auto second = client.read_reply();
  EXPECT_EQ(second.code, 250);
  EXPECT_EQ(client.read_reply().code, 221);
  relay::spool_reader reader(relay_->state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 2u);
  EXPECT_EQ(without_added_fields(after_received(stored_content(*relay_, queued_id(first))),
                                 queued_id(first)),
            "Subject: one\r\n\r\nfirst\r\n");
  EXPECT_EQ(without_added_fields(after_received(stored_content(*relay_, queued_id(second))),
                                 queued_id(second)),
            "Subject: two\r\n\r\nsecond\r\n");
}

TEST_F(smtp_listener, swaks_delivers_into_the_spool) {
  start();
  auto result = run_command({"swaks", "--server", "127.0.0.1:" + std::to_string(relay_->port()),
                             "--from", "sender@example.com", "--to", "x@example.org,y@example.org",
                             "--header", "Subject: from swaks", "--body",
                             "hello from swaks\n.dotted line", "--pipeline"});
  ASSERT_EQ(result.status, 0) << result.out << result.err;
  EXPECT_NE(result.out.find("<-  250 2.0.0 Ok: queued as "), std::string::npos) << result.out;
  relay::spool_reader reader(relay_->state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(messages[0].recipients.size(), 2u);
  EXPECT_EQ(messages[0].recipients[1].rcpt.address, "y@example.org");
  const auto content = stored_content(*relay_, messages[0].id);
  EXPECT_NE(content.find("Subject: from swaks\r\n"), std::string::npos);
  EXPECT_NE(content.find("\r\n\r\nhello from swaks\r\n.dotted line\r\n"), std::string::npos)
      << content;
}

TEST_F(smtp_listener, msmtp_delivers_into_the_spool) {
  start();
  auto result =
      run_command({"msmtp", "--host=127.0.0.1", "--port=" + std::to_string(relay_->port()),
                   "--auth=off", "--tls=off", "--from=sender@example.com", "rcpt@example.org"},
                  "Subject: from msmtp\nTo: rcpt@example.org\n\nbody line\n.\n..\nend\n");
  ASSERT_EQ(result.status, 0) << result.out << result.err;
  relay::spool_reader reader(relay_->state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  // msmtp adds From, Date and Message-ID in front; the rest arrives as written,
  // its bare LF line endings as CRLF and its dot lines unstuffed.
  const auto content = after_received(stored_content(*relay_, messages[0].id));
  const std::string tail =
      "Subject: from msmtp\r\nTo: rcpt@example.org\r\n\r\nbody line\r\n.\r\n..\r\nend\r\n";
  ASSERT_GE(content.size(), tail.size());
  EXPECT_EQ(content.substr(content.size() - tail.size()), tail) << content;
  EXPECT_EQ(content.rfind("From: sender@example.com\r\n", 0), 0u) << content;
}

TEST_F(smtp_listener, limits_answer_with_their_codes) {
  start("limits:\n  max_message_size: 2K\n  max_recipients: 2\n" + minimal_config_body());
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO c").code, 250);
  EXPECT_EQ(client.command("MAIL FROM:<sender@example.com> SIZE=2049").str(),
            "552 5.3.4 Message size exceeds fixed limit of 2048");
  EXPECT_EQ(client.command("MAIL FROM:<sender@example.com> SIZE=2048").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<a@example.org>").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<b@example.org>").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<c@example.org>").str(), "452 4.5.3 Too many recipients");
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send("Subject: big\r\n\r\n" +
              std::string(2100, 'x').insert(900, "\r\n").insert(1800, "\r\n") + "\r\n.\r\n");
  EXPECT_EQ(client.read_reply().str(), "552 5.3.4 Message size exceeds fixed limit of 2048");

  // A data line of 1000 octets with CRLF is fine, 1001 is not.
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<a@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send(std::string(998, 'a') + "\r\n.\r\n");
  EXPECT_EQ(client.read_reply().code, 250);
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<a@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send(std::string(999, 'a') + "\r\n.\r\n");
  EXPECT_EQ(client.read_reply().str(),
            "500 5.5.2 Line too long (RFC 5321 limit is 1000 octets with CRLF)");

  // An overlong command line is refused and the session goes on.
  EXPECT_EQ(client.command("NOOP " + std::string(2000, 'n')).code, 500);
  EXPECT_EQ(client.command("NOOP").code, 250);
  relay::spool_reader reader(relay_->state_dir());
  EXPECT_EQ(reader.messages().value().size(), 1u);
}

TEST_F(smtp_listener, unknown_sender_without_default_is_refused) {
  start(
      "oauth:\n  client_id: id\n  client_secret: s\n"
      "accounts:\n  - address: alice@example.com\n    senders: [\"*@billing.example.com\"]\n");
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO c").code, 250);
  EXPECT_EQ(client.command("MAIL FROM:<bob@example.com>").str(),
            "550 5.7.1 Sender <bob@example.com> is not allowed to send through this relay");
  EXPECT_EQ(client.command("MAIL FROM:<x@billing.example.com>").code, 250);
}

TEST_F(smtp_listener, command_timeout_answers_421_and_closes) {
  start("limits:\n  command_timeout: 1s\n  data_timeout: 2s\n" + minimal_config_body());
  smtp_client idle(relay_->port());
  ASSERT_EQ(idle.read_reply().code, 220);
  // A slow client trickling a command byte by byte does not re-arm the deadline.
  smtp_client slow(relay_->port());
  ASSERT_EQ(slow.read_reply().code, 220);
  for (char c : std::string("NOOP")) {
    slow.send(std::string(1, c));
    std::this_thread::sleep_for(300ms);
  }
  EXPECT_EQ(idle.read_reply(5s).str(), "421 4.4.2 relay.test Error: timeout exceeded");
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_EQ(slow.read_reply(5s).code, 421);

  smtp_client in_data(relay_->port());
  ASSERT_EQ(in_data.read_reply().code, 220);
  ASSERT_EQ(in_data.command("HELO c").code, 250);
  ASSERT_EQ(in_data.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(in_data.command("RCPT TO:<a@example.org>").code, 250);
  ASSERT_EQ(in_data.command("DATA").code, 354);
  in_data.send("Subject: never finished\r\n");
  EXPECT_EQ(in_data.read_reply(5s).str(), "421 4.4.2 relay.test Error: timeout exceeded");
  relay::spool_reader reader(relay_->state_dir());
  EXPECT_TRUE(reader.messages().value().empty());
}

TEST_F(smtp_listener, connection_limit_answers_421_while_others_are_served) {
  start("limits:\n  max_connections: 2\n" + minimal_config_body());
  smtp_client first(relay_->port());
  smtp_client second(relay_->port());
  ASSERT_EQ(first.read_reply().code, 220);
  ASSERT_EQ(second.read_reply().code, 220);
  smtp_client third(relay_->port());
  EXPECT_EQ(third.read_reply().str(), "421 4.7.0 relay.test Too many connections, try later");
  EXPECT_TRUE(third.wait_closed());
  EXPECT_EQ(first.command("NOOP").code, 250);
  EXPECT_EQ(second.command("EHLO c").code, 250);
  EXPECT_EQ(second.command("MAIL FROM:<sender@example.com>").code, 250);
  EXPECT_EQ(first.command("QUIT").code, 221);
  EXPECT_TRUE(first.wait_closed());
  // A freed slot is usable again.
  for (int attempt = 0; attempt < 50; ++attempt) {
    smtp_client fourth(relay_->port());
    auto greeting = fourth.read_reply();
    if (greeting.code == 220) return;
    std::this_thread::sleep_for(20ms);
  }
  FAIL() << "the freed connection slot was never given out again";
}

TEST_F(smtp_listener, client_outside_allow_list_gets_554) {
  start("clients:\n  allow: [\"10.0.0.0/8\"]\n" + minimal_config_body());
  smtp_client client(relay_->port());
  EXPECT_EQ(client.read_reply().str(), "554 5.7.1 relay.test Client host is not allowed to relay");
  EXPECT_TRUE(client.wait_closed());
}

TEST_F(smtp_listener, ten_protocol_errors_close_the_session) {
  start();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  for (int i = 0; i < 9; ++i) EXPECT_EQ(client.command("BOGUS").code, 500);
  EXPECT_EQ(client.command("BOGUS").str(),
            "421 4.7.0 relay.test Too many errors, closing connection");
  EXPECT_TRUE(client.wait_closed());
}

}  // namespace
}  // namespace oauth_relay::test_support
