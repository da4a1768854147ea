// The real oauth-relayd with the Google stand-ins, for mail that cannot be
// sent as it is: an account nobody authorizes (its mail expires at
// queue.lifetime and the sender hears once), a content file that vanished
// (a bounce now and a problem on /health), an 8-bit EHLO name, and ENVID and
// ORCPT values that would smuggle line breaks into a delivery report.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <thread>

#include <nlohmann/json.hpp>

#include "integration/support/google_fakes.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Mail from this sender goes through an account that is never authorized.
constexpr const char* unauthorized = "app@example.com";

class queue_findings : public testing::Test {
 protected:
  void TearDown() override {
    if (!HasFailure() || !relay_) return;
    std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  // With `unauthorized` configured as a second account, never authorized
  // (which /health lists as a problem of its own).
  void start(const std::string& queue, bool with_unauthorized = true) {
    relay_ = std::make_unique<relay_process>(
        google_.config(queue) +
        (with_unauthorized ? "  - address: " + std::string(unauthorized) + "\n" : ""));
    google_.store_token(relay_->state_dir(), relay_->key_file());
    relay_->start();
  }

  std::vector<relay::queued_message> queue() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value();
  }

  bool wait_queue_empty(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (queue().empty()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  nlohmann::json health() {
    auto r = run_command({"curl", "--silent", "--show-error", "--max-time", "10", "--unix-socket",
                          (relay_->dir() / "health.sock").string(), "http://localhost/health"});
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }

  google_fakes google_;
  std::unique_ptr<relay_process> relay_;
};

// The issue's own check: an account never authorized, queue.lifetime 5s; the
// sender gets one bounce (carried by the default account, which can send)
// and the queue empties.
TEST_F(queue_findings, mail_of_an_account_never_authorized_bounces_once_at_its_lifetime) {
  start("queue:\n  lifetime: 5s\n  retry_initial: 1s\n  retry_max: 1h\n");
  smtp_client client(relay_->port());
  const auto reply = client.send_message(unauthorized, {"rcpt@example.org"},
                                         "Subject: waits for a consent\r\n\r\nbody\r\n");
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(relay_->wait_for_log("event=account_mail_waiting", 10s));
  ASSERT_EQ(queue().size(), 1u);
  EXPECT_EQ(queue()[0].last_error,
            "account app@example.com is not authorized yet: run \"oauth-relayctl authorize "
            "app@example.com\"");

  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 30s));
  ASSERT_TRUE(wait_queue_empty(10s));
  const auto bounce = google_.messages().at(0);
  EXPECT_EQ(bounce.user, google_fakes::account);
  EXPECT_EQ(bounce.sender, "");
  EXPECT_EQ(bounce.recipients, std::vector<std::string>{unauthorized});
  EXPECT_NE(bounce.content.find("Final-Recipient: rfc822; rcpt@example.org\r\nAction: failed\r\n"
                                "Status: 4.4.7\r\n"),
            std::string::npos)
      << bounce.content;
  EXPECT_NE(bounce.content.find("in the queue: account app@example.com is not authorized yet: run "
                                "\"oauth-relayctl authorize app@example.com\""),
            std::string::npos)
      << bounce.content;
  EXPECT_NE(bounce.content.find("Subject: waits for a consent"), std::string::npos);
  // Exactly one: nothing else is queued or arrives.
  EXPECT_TRUE(relay_->wait_for_log("event=delivered", 10s));
  EXPECT_TRUE(queue().empty());
  EXPECT_EQ(google_.message_count(), 1u);
}

// queue.delay_warning: the sender first hears that the message waits (once),
// then that it failed; both notices are carried by the default account.
TEST_F(queue_findings, a_waiting_message_warns_its_sender_once_then_bounces) {
  start("queue:\n  lifetime: 8s\n  delay_warning: 2s\n  retry_initial: 1s\n  retry_max: 1h\n");
  smtp_client client(relay_->port());
  const auto reply = client.send_message(unauthorized, {"rcpt@example.org"},
                                         "Subject: slow\r\n\r\nsecret body\r\n");
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(google_.gmail().wait_for_messages(2, 40s));
  ASSERT_TRUE(wait_queue_empty(10s));
  const auto messages = google_.messages();
  ASSERT_EQ(messages.size(), 2u);
  const auto& warning = messages[0].content;
  EXPECT_EQ(messages[0].sender, "");
  EXPECT_EQ(messages[0].recipients, std::vector<std::string>{unauthorized});
  EXPECT_NE(warning.find("Subject: Delayed Mail (still being retried)\r\n"), std::string::npos)
      << warning;
  EXPECT_NE(warning.find("Final-Recipient: rfc822; rcpt@example.org\r\nAction: delayed\r\n"
                         "Status: 4.0.0\r\n"),
            std::string::npos)
      << warning;
  EXPECT_NE(warning.find("Will-Retry-Until: "), std::string::npos);
  EXPECT_EQ(warning.find("secret body"), std::string::npos);  // the header only
  const auto& bounce = messages[1].content;
  EXPECT_NE(bounce.find("Action: failed\r\nStatus: 4.4.7\r\n"), std::string::npos) << bounce;
  EXPECT_TRUE(queue().empty());
}

// A content file removed behind the relay's back: the message is failed at
// its next attempt with a bounce that says why, not retried on every pass,
// and /health is degraded naming it.
TEST_F(queue_findings, a_message_whose_content_file_is_gone_bounces_and_shows_on_health) {
  start("queue:\n  retry_initial: 1s\n  retry_max: 2s\n", /*with_unauthorized=*/false);
  google_.stop_gmail();
  const auto message = make_test_message("vanishing", 600 * 1024);  // large: a content file
  smtp_client client(relay_->port());
  const auto reply =
      client.send_message(google_fakes::account, {"rcpt@example.org"}, message.stuffed());
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(relay_->wait_for_log("event=upstream_unreachable", 15s));
  const auto queued = queue();
  ASSERT_EQ(queued.size(), 1u);
  const auto id = queued[0].id;
  ASSERT_TRUE(fs::remove(relay_->state_dir() / "spool" / id));
  google_.start_gmail();

  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 30s));
  ASSERT_TRUE(wait_queue_empty(10s));
  const auto bounce = google_.messages().at(0);
  EXPECT_EQ(bounce.sender, "");
  EXPECT_EQ(bounce.recipients, std::vector<std::string>{google_fakes::account});
  EXPECT_NE(bounce.content.find("Status: 5.3.0\r\n"), std::string::npos) << bounce.content;
  EXPECT_NE(bounce.content.find("the message content is gone from the queue: message " + id +
                                ": cannot read "),
            std::string::npos)
      << bounce.content;
  EXPECT_NE(bounce.content.find("The message itself is not attached"), std::string::npos);
  EXPECT_EQ(bounce.content.find("message/rfc822"), std::string::npos);

  const auto h = health();
  EXPECT_EQ(h["status"], "degraded") << h.dump();
  ASSERT_EQ(h["problems"].size(), 1u) << h.dump();
  const std::string problem = h["problems"][0];
  EXPECT_EQ(problem.rfind("1 message was failed and bounced because the content was gone from "
                          "the queue (last: " +
                              id + ": ",
                          0),
            0u)
      << problem;
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
}

TEST_F(queue_findings, an_8bit_ehlo_name_is_refused_and_never_reaches_received) {
  start("");
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  const auto refused = client.command("EHLO b\xC3\xBC\x63her.example");
  EXPECT_EQ(refused.code, 501);
  EXPECT_EQ(refused.str(),
            "501 5.5.4 The hostname must be ASCII (an international name in its xn-- form, RFC "
            "6531 section 3.7.1)");
  EXPECT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 503);
  EXPECT_EQ(client.command("EHLO xn--bcher-kva.example").code, 250);
  EXPECT_EQ(client.command("MAIL FROM:<sender@example.com>").code, 250);
  EXPECT_EQ(client.command("RCPT TO:<rcpt@example.org>").code, 250);
  EXPECT_EQ(client.command("DATA").code, 354);
  EXPECT_EQ(client.command("Subject: x\r\n\r\nbody\r\n.").code, 250);
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 20s));
  const auto content = google_.messages().at(0).content;
  EXPECT_EQ(content.rfind("Received: from xn--bcher-kva.example ", 0), 0u) << content;
  const auto header_end = content.find("\r\n\r\n");
  for (std::size_t i = 0; i < header_end; ++i) {
    EXPECT_LT(static_cast<unsigned char>(content[i]), 0x80) << "8-bit byte in the header at " << i;
  }
}

// ENVID and ORCPT in xtext may encode CR, LF and NUL: the delivery report
// keeps them encoded, so they cannot end a field or add one.
TEST_F(queue_findings, xtext_line_breaks_stay_encoded_in_the_bounce) {
  start("");
  google_.gmail().reject_recipient("nobody@example.org");
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  EXPECT_EQ(client.command("EHLO client.test").code, 250);
  EXPECT_EQ(
      client.command("MAIL FROM:<sender@example.com> ENVID=id+0D+0AX-Injected:+20yes+00").code,
      250);
  EXPECT_EQ(client
                .command("RCPT TO:<nobody@example.org> NOTIFY=FAILURE "
                         "ORCPT=rfc822;nobody+0D+0AX-Also:+20yes@example.org")
                .code,
            250);
  EXPECT_EQ(client.command("DATA").code, 354);
  EXPECT_EQ(client.command("Subject: x\r\n\r\nbody\r\n.").code, 250);
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 20s));
  const auto bounce = google_.messages().at(0).content;
  EXPECT_NE(bounce.find("\r\nOriginal-Envelope-Id: id+0D+0AX-Injected:+20yes+00\r\n"),
            std::string::npos)
      << bounce;
  EXPECT_NE(bounce.find("\r\nOriginal-Recipient: rfc822;nobody+0D+0AX-Also:+20yes@example.org\r\n"),
            std::string::npos)
      << bounce;
  EXPECT_EQ(bounce.find("\nX-Injected"), std::string::npos);
  EXPECT_EQ(bounce.find("\nX-Also"), std::string::npos);
  EXPECT_EQ(bounce.find('\0'), std::string::npos);
}

}  // namespace
}  // namespace oauth_relay::test_support
