// Hostile input through the real listener, beyond smtp_listener_test: every
// end-of-data smuggling sequence on its own, binary garbage and NUL octets,
// exact size and recipient limits, huge lines, crowds of idle connections,
// slow and vanishing clients. After each, the daemon still takes a normal
// message.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <thread>

#include "integration/support/google_fakes.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;

// The content after the relay's Received header, without the Date,
// Message-ID and From the relay added to each test message's header.
std::string stored_body(const relay_process& relay, const std::string& id) {
  relay::spool_reader reader(relay.state_dir());
  const auto content = reader.content(id);
  if (!content) return "<missing>";
  std::size_t at = 0;
  for (;;) {
    at = content->find("\r\n", at);
    if (at == std::string::npos) return "<no Received header>";
    at += 2;
    if (at >= content->size() || (*content)[at] != '\t') {
      return without_added_fields(content->substr(at), id);
    }
  }
}

std::size_t stored_count(const relay_process& relay) {
  relay::spool_reader reader(relay.state_dir());
  return reader.messages().value().size();
}

class hostile_input : public testing::Test {
 protected:
  void start(const std::string& limits = "") {
    relay_ = std::make_unique<relay_process>(limits + minimal_config_body());
    relay_->start();
  }

  // A fresh connection sends a plain message and it is stored as sent.
  void expect_serves_a_normal_message() {
    const auto before = stored_count(*relay_);
    smtp_client client(relay_->port());
    auto reply = client.send_message("sender@example.com", {"rcpt@example.org"},
                                     "Subject: normal\r\n\r\nstill working\r\n");
    ASSERT_EQ(reply.code, 250) << reply.str();
    EXPECT_EQ(stored_body(*relay_, queued_id(reply)), "Subject: normal\r\n\r\nstill working\r\n");
    EXPECT_EQ(stored_count(*relay_), before + 1);
    EXPECT_EQ(client.command("QUIT").code, 221);
  }

  // Greeting, EHLO, MAIL, one RCPT, DATA: ready for content.
  static void open_transaction(smtp_client& client) {
    ASSERT_EQ(client.read_reply().code, 220);
    ASSERT_EQ(client.command("EHLO hostile.test").code, 250);
    ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
    ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
    ASSERT_EQ(client.command("DATA").code, 354);
  }

  std::unique_ptr<relay_process> relay_;
};

// Each sequence would end DATA on a lax server and let the lines after it
// run as a second, unauthorised transaction. Here only CR LF "." CR LF ends
// the data: the rest stays content, with bare CR and bare LF stored as CR LF
// and a dot starting a line removed as stuffing.
TEST_F(hostile_input, every_smuggling_sequence_stays_inside_the_message) {
  start();
  struct smuggling {
    const char* name;
    std::string sequence;  // between "before" and the smuggled commands
    std::string stored;    // what it must become
  };
  const std::vector<smuggling> cases = {
      {"LF . LF", "\n.\n", "\r\n\r\n"},
      {"CR . CR", "\r.\r", "\r\n\r\n"},
      {"LF . CR LF", "\n.\r\n", "\r\n\r\n"},
      {"CR LF . LF", "\r\n.\n", "\r\n\r\n"},
      {"CR . CR LF", "\r.\r\n", "\r\n\r\n"},
      {"CR LF . CR", "\r\n.\r", "\r\n\r\n"},
      {"CR LF . CR CR LF", "\r\n.\r\r\n", "\r\n\r\n\r\n"},
      {"CR LF . LF CR LF", "\r\n.\n\r\n", "\r\n\r\n\r\n"},
      {"LF . LF LF", "\n.\n\n", "\r\n\r\n\r\n"},
      {"CR LF . NUL CR LF", std::string("\r\n.\0\r\n", 6), std::string("\r\n\0\r\n", 5)},
      {"CR LF SP . CR LF", "\r\n .\r\n", "\r\n .\r\n"},
  };
  const std::string smuggled =
      "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nsmuggled\r\n";
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO hostile.test").code, 250);
  std::size_t messages = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
    ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
    ASSERT_EQ(client.command("DATA").code, 354);
    client.send("Subject: smuggle\r\n\r\nbefore" + c.sequence + smuggled + ".\r\n");
    auto reply = client.read_reply();
    ASSERT_EQ(reply.code, 250) << reply.str();
    ++messages;
    // The very next reply is NOOP's: nothing smuggled was run as a command.
    EXPECT_EQ(client.command("NOOP").str(), "250 2.0.0 Ok");
    EXPECT_EQ(stored_body(*relay_, queued_id(reply)),
              "Subject: smuggle\r\n\r\nbefore" + c.stored + smuggled);
    EXPECT_EQ(stored_count(*relay_), messages);
  }
  // At the very start of the content too, where DATA's own CR LF precedes it.
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send(".\n" + smuggled + ".\r\n");
  auto reply = client.read_reply();
  ASSERT_EQ(reply.code, 250) << reply.str();
  EXPECT_EQ(client.command("NOOP").str(), "250 2.0.0 Ok");
  EXPECT_EQ(stored_body(*relay_, queued_id(reply)), "\r\n" + smuggled);
  expect_serves_a_normal_message();
}

TEST_F(hostile_input, binary_garbage_and_nul_in_commands_are_refused_and_the_session_goes_on) {
  start();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  const std::string unrecognized = "500 5.5.2 Command not recognized";
  EXPECT_EQ(client.command(std::string("\0\0\0\0", 4)).str(), unrecognized);
  // A TLS ClientHello where SMTP was expected.
  EXPECT_EQ(client.command(std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11)).str(),
            unrecognized);
  EXPECT_EQ(client.command("\xff\xfe\xfd\x80\x81 garbage \x7f\x01").str(), unrecognized);
  EXPECT_EQ(client.command(std::string("EHLO a\0b", 8)).code, 501);
  ASSERT_EQ(client.command("EHLO hostile.test").code, 250);
  EXPECT_EQ(client.command(std::string("MAIL FROM:<send\0er@example.com>", 31)).code, 501);
  EXPECT_EQ(client.command("MAIL FROM:<\xff\xfe@example.com>").code, 501);
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  EXPECT_EQ(client.command(std::string("RCPT TO:<a\0@example.org>", 24)).code, 501);
  EXPECT_EQ(client.command("RCPT TO:<\x01\x02@example.org>").code, 501);
  // Still one transaction in order: a good recipient, data, a 250.
  ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send("Subject: after garbage\r\n\r\nok\r\n.\r\n");
  auto reply = client.read_reply();
  ASSERT_EQ(reply.code, 250) << reply.str();
  relay::spool_reader reader(relay_->state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].env.sender, "sender@example.com");
  ASSERT_EQ(messages[0].recipients.size(), 1u);
  EXPECT_EQ(messages[0].recipients[0].rcpt.address, "rcpt@example.org");
  expect_serves_a_normal_message();
}

// RFC 5322 forbids NUL in a message, but refusing it would bounce mail some
// application already considers sent; it is kept, byte for byte, as are
// 8-bit octets that are not UTF-8.
TEST_F(hostile_input, nul_and_binary_octets_in_data_are_stored_byte_for_byte) {
  start();
  smtp_client client(relay_->port());
  std::string body = "Subject: binary\r\n\r\n";
  for (int c = 1; c < 256; ++c) {
    if (c == '\r' || c == '\n') continue;
    body += static_cast<char>(c);
    if (c % 64 == 0) body += "\r\n";
  }
  body += std::string("\r\nNUL here:\0:and here\0\r\n\0\r\n", 27);
  auto reply = client.send_message("sender@example.com", {"rcpt@example.org"}, body);
  ASSERT_EQ(reply.code, 250) << reply.str();
  EXPECT_EQ(stored_body(*relay_, queued_id(reply)), body);
  expect_serves_a_normal_message();
}

TEST_F(hostile_input, size_limit_exactly_at_is_accepted_one_over_is_refused) {
  start("limits:\n  max_message_size: 4K\n");
  // `size` octets of content; with `dots`, every body line starts with a dot.
  auto content_of = [](std::size_t size, bool dots = false) {
    std::string content = "Subject: size\r\n\r\n";
    const std::string line = (dots ? "." : "s") + std::string(77, 's') + "\r\n";
    while (content.size() + line.size() + 3 <= size) content += line;
    content += std::string(size - content.size() - 2, 'e') + "\r\n";
    return content;
  };
  ASSERT_EQ(content_of(4096).size(), 4096u);
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO c").code, 250);
  for (std::size_t size : {std::size_t{4096}, std::size_t{4097}}) {
    ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
    ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
    ASSERT_EQ(client.command("DATA").code, 354);
    client.send(content_of(size) + ".\r\n");
    auto reply = client.read_reply();
    if (size == 4096) {
      ASSERT_EQ(reply.code, 250) << reply.str();
      EXPECT_EQ(stored_body(*relay_, queued_id(reply)), content_of(4096));
    } else {
      EXPECT_EQ(reply.str(), "552 5.3.4 Message size exceeds fixed limit of 4096");
    }
  }
  // Dot-stuffing does not count: 4096 octets as stored, more on the wire.
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com> SIZE=4096").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  const std::string dotted = content_of(4096, true);
  std::string wire;  // as a client sends it: a dot doubled at each line start
  for (std::size_t at = 0; at < dotted.size();) {
    const auto end = dotted.find("\r\n", at) + 2;
    wire += (dotted[at] == '.' ? "." : "") + dotted.substr(at, end - at);
    at = end;
  }
  ASSERT_GT(wire.size(), 4096u + 40);
  client.send(wire + ".\r\n");
  auto reply = client.read_reply();
  ASSERT_EQ(reply.code, 250) << reply.str();
  EXPECT_EQ(stored_body(*relay_, queued_id(reply)), dotted);
  EXPECT_EQ(stored_count(*relay_), 2u);
  expect_serves_a_normal_message();
}

TEST_F(hostile_input, recipient_over_the_limit_is_refused_and_the_rest_are_kept) {
  start("limits:\n  max_recipients: 3\n");
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO c").code, 250);
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  for (const char* r : {"a", "b", "c"}) {
    EXPECT_EQ(client.command(std::string("RCPT TO:<") + r + "@example.org>").code, 250);
  }
  EXPECT_EQ(client.command("RCPT TO:<d@example.org>").str(), "452 4.5.3 Too many recipients");
  EXPECT_EQ(client.command("RCPT TO:<e@example.org>").str(), "452 4.5.3 Too many recipients");
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send("Subject: three\r\n\r\nx\r\n.\r\n");
  ASSERT_EQ(client.read_reply().code, 250);
  relay::spool_reader reader(relay_->state_dir());
  auto messages = reader.messages().value();
  ASSERT_EQ(messages.size(), 1u);
  ASSERT_EQ(messages[0].recipients.size(), 3u);
  EXPECT_EQ(messages[0].recipients[2].rcpt.address, "c@example.org");
  expect_serves_a_normal_message();
}

// Far beyond the session's input buffer (16 KB): the line is discarded as it
// arrives, answered once, and the session carries on.
TEST_F(hostile_input, megabyte_lines_are_refused_without_ending_the_session) {
  start();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  client.send("NOOP " + std::string(1024 * 1024, 'n') + "\r\n");
  EXPECT_EQ(client.read_reply().code, 500);
  EXPECT_EQ(client.command("NOOP").str(), "250 2.0.0 Ok");
  ASSERT_EQ(client.command("EHLO c").code, 250);
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send("Subject: long\r\n\r\n" + std::string(1024 * 1024, 'd') + "\r\n.\r\n");
  EXPECT_EQ(client.read_reply().str(),
            "500 5.5.2 Line too long (RFC 5321 limit is 1000 octets with CRLF)");
  EXPECT_EQ(client.command("NOOP").str(), "250 2.0.0 Ok");
  EXPECT_EQ(stored_count(*relay_), 0u);
  expect_serves_a_normal_message();
}

TEST_F(hostile_input, idle_crowd_past_max_connections_gets_421_while_a_session_works) {
  start("limits:\n  max_connections: 20\n");
  std::vector<std::unique_ptr<smtp_client>> idle;
  for (int i = 0; i < 20; ++i) {
    idle.push_back(std::make_unique<smtp_client>(relay_->port()));
    ASSERT_EQ(idle.back()->read_reply().code, 220) << i;
  }
  for (int i = 0; i < 30; ++i) {
    smtp_client extra(relay_->port());
    EXPECT_EQ(extra.read_reply().str(), "421 4.7.0 relay.test Too many connections, try later");
    EXPECT_TRUE(extra.wait_closed());
  }
  // One of the admitted sessions sends a message while the crowd waits.
  auto& worker = *idle.front();
  ASSERT_EQ(worker.command("EHLO c").code, 250);
  ASSERT_EQ(worker.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(worker.command("RCPT TO:<rcpt@example.org>").code, 250);
  ASSERT_EQ(worker.command("DATA").code, 354);
  worker.send("Subject: crowded\r\n\r\nx\r\n.\r\n");
  EXPECT_EQ(worker.read_reply().code, 250);
  EXPECT_EQ(worker.command("QUIT").code, 221);
  EXPECT_TRUE(worker.wait_closed());
  idle.clear();  // the crowd leaves; slots free up
  for (int attempt = 0; attempt < 100; ++attempt) {
    smtp_client probe(relay_->port());
    if (probe.read_reply().code == 220) break;
    std::this_thread::sleep_for(20ms);
  }
  expect_serves_a_normal_message();
}

// One octet every 100 ms: slow, but inside command_timeout per command and
// data_timeout for the whole content, so it is served.
TEST_F(hostile_input, slow_client_inside_the_timeouts_is_served) {
  start("limits:\n  command_timeout: 2s\n  data_timeout: 5s\n");
  smtp_client client(relay_->port());
  auto trickle = [&](const std::string& bytes) {
    for (char c : bytes) {
      client.send(std::string(1, c));
      std::this_thread::sleep_for(100ms);
    }
  };
  ASSERT_EQ(client.read_reply().code, 220);
  trickle("NOOP\r\n");
  EXPECT_EQ(client.read_reply().str(), "250 2.0.0 Ok");
  ASSERT_EQ(client.command("EHLO c").code, 250);
  ASSERT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  trickle("Subject: slow\r\n\r\n.slow\r\n.\r\n");
  auto reply = client.read_reply();
  ASSERT_EQ(reply.code, 250) << reply.str();
  EXPECT_EQ(stored_body(*relay_, queued_id(reply)), "Subject: slow\r\n\r\nslow\r\n");
  expect_serves_a_normal_message();
}

// A client that vanishes in the middle of DATA leaves nothing: no message,
// and no half-written content file (this one is large enough to be spilled
// to the spool directory).
TEST_F(hostile_input, client_vanishing_mid_data_leaves_nothing_behind) {
  start();
  {
    smtp_client client(relay_->port());
    open_transaction(client);
    std::string chunk;
    while (chunk.size() < 400 * 1024) chunk += std::string(78, 'v') + "\r\n";
    client.send("Subject: vanishing\r\n\r\n" + chunk);
  }  // closed without the final dot
  const auto spool_dir = relay_->state_dir() / "spool";
  bool empty = false;
  for (int i = 0; i < 200 && !empty; ++i) {
    empty = std::filesystem::is_empty(spool_dir);
    if (!empty) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(empty) << "a content file of an unfinished message was left";
  EXPECT_EQ(stored_count(*relay_), 0u);
  expect_serves_a_normal_message();
}

}  // namespace
}  // namespace oauth_relay::test_support
