// The real oauth-relayd delivering to the in-repo Gmail and Google token
// endpoint over real TLS: exact bytes, token refresh and revocation, faults
// that defer, permanent failures that bounce, and certificates that stop
// credentials from ever being sent.
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <regex>
#include <thread>

#include "auth/token_store.hpp"
#include "fakes/fake_gmail.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gmail;
using fakes::fake_oauth;
using fakes::test_pki;

constexpr const char* account = "sender@example.com";

class delivery : public testing::Test {
 protected:
  void SetUp() override {
    oauth_.add_account(account, "refresh-1");
    ca_file_ = pki_.write_ca(scratch_.path() / "ca.pem");
  }

  void TearDown() override {
    if (!HasFailure() || !relay_) return;
    std::cerr << "---- oauth-relayd log\n" << relay_->log() << "---- queue\n";
    relay::spool_reader reader(relay_->state_dir());
    for (const auto& m : reader.messages().value()) {
      std::cerr << m.id << " from=<" << m.env.sender << "> attempts=" << m.attempts
                << " error=" << m.last_error << "\n";
    }
    auto cli = run_command({"sqlite3", (relay_->state_dir() / "queue.db").string(),
                            "select id, attempts from messages"});
    std::cerr << "sqlite3: " << cli.out << cli.err;
  }

  // Starts a Gmail stand-in with `certificate` and the relay pointed at it.
  void start(fake_gmail::mode mode = fake_gmail::mode::starttls,
             std::optional<fakes::pem_pair> certificate = std::nullopt,
             const std::string& extra = "") {
    gmail_ = std::make_unique<fake_gmail>(
        mode, certificate ? *certificate : pki_.issue({"localhost"}, {"127.0.0.1"}));
    gmail_->set_token_validator([this](const std::string& user, const std::string& token) {
      return oauth_.token_valid(user, token);
    });
    relay_ = std::make_unique<relay_process>(
        "hostname: relay.test\n"
        "upstream:\n"
        "  host: 127.0.0.1\n"
        "  port: " +
        std::to_string(gmail_->port()) +
        "\n"
        "  tls: " +
        (mode == fake_gmail::mode::starttls ? "starttls" : "implicit") +
        "\n"
        "  ca_file: " +
        ca_file_.string() +
        "\n"
        "queue:\n  retry_initial: 1s\n  retry_max: 2s\n" +
        extra +
        "oauth:\n"
        "  client_id: \"" +
        fake_oauth::default_client_id +
        "\"\n"
        "  client_secret: \"" +
        fake_oauth::default_client_secret +
        "\"\n"
        "  token_url: " +
        oauth_.token_url() +
        "\n"
        "  ca_file: " +
        ca_file_.string() +
        "\n"
        "accounts:\n"
        "  - address: " +
        account +
        "\n"
        "    default: true\n");
    // As `oauth-relayctl import` does: the refresh token goes into the store.
    std::filesystem::create_directories(relay_->state_dir());
    std::filesystem::permissions(relay_->state_dir(), std::filesystem::perms::owner_all);
    {
      auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
      store.store_refresh_token(account, "refresh-1");
    }
    relay_->start();
  }

  client_reply send(const std::vector<std::string>& to, const std::string& content) {
    smtp_client client(relay_->port());
    return client.send_message(account, to, content);
  }

  std::size_t queued() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value().size();
  }

  bool wait_queue_empty(std::chrono::milliseconds timeout = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (queued() == 0) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  }

  temp_dir scratch_;
  test_pki pki_;
  fake_oauth oauth_{pki_};
  std::filesystem::path ca_file_;
  std::unique_ptr<fake_gmail> gmail_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(delivery, message_arrives_byte_for_byte_with_the_received_header) {
  start();
  // As the application sends it: dot-stuffed, a lone "." line inside the content.
  const std::string stuffed =
      "From: sender@example.com\r\nSubject: to gmail\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
      "Message-ID: <1@app.test>\r\n\r\n..dot-stuffed line\r\nplain\r\n..\r\n"
      "\xc3\xa9\r\n";
  auto reply = send({"a@example.org", "b@example.org"}, stuffed);
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  auto m = gmail_->messages().at(0);
  EXPECT_EQ(m.user, account);
  EXPECT_EQ(m.sender, account);
  EXPECT_EQ(m.recipients, (std::vector<std::string>{"a@example.org", "b@example.org"}));
  EXPECT_TRUE(m.pipelined);
  const std::string expected_body =
      "From: sender@example.com\r\nSubject: to gmail\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
      "Message-ID: <1@app.test>\r\n\r\n.dot-stuffed line\r\nplain\r\n.\r\n"
      "\xc3\xa9\r\n";
  // The uid is the test's own: the owner of the client socket on loopback.
  ASSERT_EQ(m.content.rfind("Received: from client.test ([127.0.0.1] uid " +
                                std::to_string(::getuid()) + ")\r\n\tby relay.test",
                            0),
            0u)
      << m.content;
  EXPECT_EQ(m.content.substr(m.content.size() - expected_body.size()), expected_body);
  EXPECT_NE(m.mail_command.find("BODY=8BITMIME"), std::string::npos) << m.mail_command;
  EXPECT_TRUE(wait_queue_empty());
  EXPECT_EQ(gmail_->logins(), 1u);
}

// The content after the relay's Received: header (its continuation lines start with a tab).
std::string after_received(const std::string& content) {
  std::size_t at = 0;
  for (;;) {
    at = content.find("\r\n", at);
    if (at == std::string::npos) return "<no Received header>";
    at += 2;
    if (at >= content.size() || content[at] != '\t') return content.substr(at);
  }
}

TEST_F(delivery, a_complete_message_arrives_unchanged_but_for_the_received_header) {
  start();
  const std::string message =
      "from: Someone <sender@example.com>\r\nDATE: Tue, 1 Dec 2026 10:00:00 +0000\r\n"
      "Subject: folded\r\n  subject\r\nmessage-id:\r\n <2@app.test>\r\n\r\nbody\r\n";
  const auto reply = send({"a@example.org"}, message);
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  const auto m = gmail_->messages().at(0);
  EXPECT_EQ(after_received(m.content), message);
  EXPECT_EQ(relay_->log().find("added="), std::string::npos);
}

// RFC 6409 §8: what a legacy application leaves out, the relay adds where
// the header ends; everything the application sent stays as it was.
TEST_F(delivery, date_message_id_and_from_are_added_when_missing) {
  start();
  const auto reply = send({"a@example.org"}, "Subject: from cron\r\n\r\nbody\r\n");
  ASSERT_EQ(reply.code, 250) << reply.str();
  const std::string id = queued_id(reply);
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  const std::string content = after_received(gmail_->messages().at(0).content);
  const std::string head = "Subject: from cron\r\nDate: ";
  ASSERT_EQ(content.rfind(head, 0), 0u) << content;
  const auto date_end = content.find("\r\n", head.size());
  ASSERT_NE(date_end, std::string::npos);
  const std::string date = content.substr(head.size(), date_end - head.size());
  // RFC 5322 §3.3: "Tue, 1 Dec 2026 18:00:00 +0000".
  EXPECT_TRUE(std::regex_match(date, std::regex(R"([A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} )"
                                                R"(\d{2}:\d{2}:\d{2} [+-]\d{4})")))
      << date;
  const std::string rest = content.substr(date_end + 2);
  std::smatch parts;
  ASSERT_TRUE(std::regex_match(rest, parts,
                               std::regex("Message-ID: <" + id +
                                          R"(\.(\d+)@relay\.test>\r\nFrom: )"
                                          R"(sender@example\.com\r\n\r\nbody\r\n)")))
      << rest;
  EXPECT_NE(relay_->log().find("added=Date,Message-ID,From"), std::string::npos) << relay_->log();
}

TEST_F(delivery, implicit_tls_works_too) {
  start(fake_gmail::mode::implicit);
  ASSERT_EQ(send({"a@example.org"}, "Subject: implicit\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  EXPECT_TRUE(wait_queue_empty());
}

TEST_F(delivery, access_token_expiring_mid_run_is_refreshed_and_nothing_fails) {
  oauth_.set_expires_in(2s);
  start();
  ASSERT_EQ(send({"a@example.org"}, "Subject: one\r\n\r\n1\r\n").code, 250);
  ASSERT_TRUE(gmail_->wait_for_messages(1, 10s));
  std::this_thread::sleep_for(3s);  // the first access token is now expired
  ASSERT_EQ(send({"a@example.org"}, "Subject: two\r\n\r\n2\r\n").code, 250);
  ASSERT_TRUE(gmail_->wait_for_messages(2, 10s));
  EXPECT_EQ(gmail_->auth_failures(), 0u);
  EXPECT_GE(oauth_.refreshes_served(), 2u);
  EXPECT_TRUE(wait_queue_empty());
}

TEST_F(delivery, revoked_token_waits_for_reauthorization_then_goes_out_without_restart) {
  start();
  oauth_.revoke("refresh-1");
  oauth_.expire_access_tokens();
  ASSERT_EQ(send({"a@example.org"}, "Subject: waits\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(relay_->wait_for_log("needs re-authorization", 10s)) << relay_->log();
  ASSERT_TRUE(relay_->wait_for_log("event=account_mail_waiting", 10s)) << relay_->log();
  EXPECT_NE(relay_->log().find("oauth-relayctl authorize sender@example.com"), std::string::npos);
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(gmail_->messages().size(), 0u);
  EXPECT_EQ(queued(), 1u);  // waiting, not bounced

  oauth_.add_account(account, "refresh-2");
  {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    store.store_refresh_token(account, "refresh-2");
  }
  ASSERT_TRUE(gmail_->wait_for_messages(1, 15s)) << relay_->log();
  EXPECT_TRUE(wait_queue_empty());
  EXPECT_EQ(relay_->log().find("refresh-2"), std::string::npos) << "a token reached the log";
}

TEST_F(delivery, temporary_faults_defer_and_deliver_exactly_once) {
  start();
  gmail_->greet_421(1);
  ASSERT_EQ(send({"a@example.org"}, "Subject: after 421\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(gmail_->wait_for_messages(1, 15s)) << relay_->log();
  ASSERT_TRUE(wait_queue_empty());

  gmail_->fail_data_451(1);
  ASSERT_EQ(send({"a@example.org"}, "Subject: after 451\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(gmail_->wait_for_messages(2, 15s)) << relay_->log();
  ASSERT_TRUE(wait_queue_empty());

  gmail_->drop_after_data(1);
  ASSERT_EQ(send({"a@example.org"}, "Subject: after drop\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(gmail_->wait_for_messages(3, 15s)) << relay_->log();
  ASSERT_TRUE(wait_queue_empty());
  std::this_thread::sleep_for(1500ms);
  auto messages = gmail_->messages();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_NE(messages[0].content.find("Subject: after 421"), std::string::npos);
  EXPECT_NE(messages[1].content.find("Subject: after 451"), std::string::npos);
  EXPECT_NE(messages[2].content.find("Subject: after drop"), std::string::npos);
}

TEST_F(delivery, permanent_failure_of_one_recipient_bounces_that_one_only) {
  start();
  gmail_->reject_recipient("nobody@example.org");
  ASSERT_EQ(send({"a@example.org", "nobody@example.org", "c@example.org"},
                 "Subject: three\r\nMessage-ID: <orig@example.com>\r\n\r\nbody\r\n")
                .code,
            250);
  ASSERT_TRUE(gmail_->wait_for_messages(2, 15s)) << relay_->log();
  auto messages = gmail_->messages();
  EXPECT_EQ(messages[0].recipients, (std::vector<std::string>{"a@example.org", "c@example.org"}));
  const auto& bounce = messages[1];
  EXPECT_EQ(bounce.sender, "");
  EXPECT_EQ(bounce.recipients, (std::vector<std::string>{account}));
  EXPECT_NE(bounce.content.find("Content-Type: multipart/report; report-type=delivery-status"),
            std::string::npos);
  EXPECT_NE(bounce.content.find("Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\n"
                                "Status: 5.1.1\r\n"),
            std::string::npos)
      << bounce.content;
  EXPECT_EQ(bounce.content.find("Final-Recipient: rfc822; a@example.org"), std::string::npos);
  EXPECT_NE(bounce.content.find("Message-ID: <orig@example.com>"), std::string::npos);
  EXPECT_TRUE(wait_queue_empty());
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(gmail_->messages().size(), 2u);  // the bounce is not bounced or repeated
}

TEST_F(delivery, unknown_ca_means_no_credentials_and_mail_waits) {
  test_pki stranger;
  start(fake_gmail::mode::starttls, stranger.issue({"localhost"}, {"127.0.0.1"}));
  ASSERT_EQ(send({"a@example.org"}, "Subject: untrusted\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(relay_->wait_for_log("event=upstream_unreachable", 10s));
  EXPECT_NE(relay_->log().find("certificate verify failed"), std::string::npos) << relay_->log();
  EXPECT_EQ(gmail_->auth_attempts(), 0u);
  EXPECT_EQ(queued(), 1u);
}

TEST_F(delivery, certificate_for_another_host_means_no_credentials) {
  start(fake_gmail::mode::starttls, pki_.issue({"smtp.other.example"}, {"192.0.2.1"}));
  ASSERT_EQ(send({"a@example.org"}, "Subject: wrong host\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(relay_->wait_for_log("event=upstream_unreachable", 10s));
  EXPECT_EQ(gmail_->auth_attempts(), 0u);
  EXPECT_EQ(queued(), 1u);
}

TEST_F(delivery, upstream_without_starttls_gets_no_credentials) {
  start();
  gmail_->set_offer_starttls(false);
  ASSERT_EQ(send({"a@example.org"}, "Subject: plain\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(relay_->wait_for_log("event=upstream_unreachable", 10s));
  EXPECT_NE(relay_->log().find("STARTTLS"), std::string::npos) << relay_->log();
  EXPECT_EQ(gmail_->auth_attempts(), 0u);
  EXPECT_EQ(queued(), 1u);
}

TEST_F(delivery, connections_are_reused_across_messages) {
  start();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(send({"a@example.org"}, "Subject: " + std::to_string(i) + "\r\n\r\nx\r\n").code, 250);
  }
  ASSERT_TRUE(gmail_->wait_for_messages(30, 20s));
  // At most upstream.max_connections (4) logins for 30 messages.
  EXPECT_LE(gmail_->logins(), 4u);
  EXPECT_TRUE(wait_queue_empty());
}

}  // namespace
}  // namespace oauth_relay::test_support
