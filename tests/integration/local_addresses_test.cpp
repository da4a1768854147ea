// Mail for root reaches a person: the real daemon, oauth-relay-sendmail and
// oauth-relayctl with local_domains and aliases, against the Gmail
// stand-in. `sendmail root` as cron runs it arrives at root's alias; a local
// name nobody maps is refused at RCPT; a loop is refused by --check-config;
// a bounce to a local sender goes to that sender's alias.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <memory>

#include "integration/support/ctl_process.hpp"
#include "integration/support/google_fakes.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;

std::string sendmail_path() {
  return OAUTH_RELAY_SENDMAIL_PATH;
}

const std::string aliases =
    "local_domains: [relay.test, localhost]\n"
    "aliases:\n"
    "  root: [admin@example.org]\n"
    "  postmaster: [root]\n"
    "  cron: [root, ops@example.org]\n";

class local_addresses : public testing::Test {
 protected:
  void start(const std::string& extra = aliases) {
    relay_ = std::make_unique<relay_process>(google_.config(extra));
    google_.store_token(relay_->state_dir(), relay_->key_file());
    relay_->start();
  }

  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  google_fakes google_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(local_addresses, sendmail_root_as_cron_runs_it_arrives_at_the_alias) {
  start();
  // cron: "sendmail -FCronDaemon -i -B8BITMIME -oem root" with the job's output.
  const auto config = relay_->dir() / "sendmail.yaml";
  std::ofstream(config) << "listen: [\"127.0.0.1:" << relay_->port()
                        << "\"]\nhostname: relay.test\n";
  const auto r = run_command(
      {sendmail_path(), "-c", config.string(), "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
      "Subject: Cron <root@relay> run-parts /etc/cron.daily\n\nall good\n");
  ASSERT_EQ(r.status, 0) << r.err;
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 15s)) << relay_->log();
  const auto m = google_.messages().at(0);
  EXPECT_EQ(m.recipients, std::vector<std::string>{"admin@example.org"});
  EXPECT_EQ(m.user, google_fakes::account);
  // As cron wrote it, with the From: oauth-relay-sendmail adds for -F.
  EXPECT_NE(m.content.find("Subject: Cron <root@relay> run-parts"), std::string::npos);
  EXPECT_NE(m.content.find("\r\nFrom: CronDaemon <root@relay.test>\r\n"), std::string::npos)
      << m.content;
}

TEST_F(local_addresses, smtp_bare_names_and_each_address_once) {
  start();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO app.test").code, 250);
  ASSERT_EQ(client.command("MAIL FROM:<cron>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<cron>").code, 250);
  ASSERT_EQ(client.command("RCPT TO:<postmaster@localhost>").code, 250);
  ASSERT_EQ(client.command("DATA").code, 354);
  client.send("Subject: both\r\n\r\nx\r\n.\r\n");
  ASSERT_EQ(client.read_reply().code, 250);
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 15s)) << relay_->log();
  const auto m = google_.messages().at(0);
  EXPECT_EQ(m.recipients, (std::vector<std::string>{"admin@example.org", "ops@example.org"}));
  // The sender qualified with the first local domain, and the From: added from it.
  EXPECT_NE(m.content.find("\r\nFrom: cron@relay.test\r\n"), std::string::npos) << m.content;
}

TEST_F(local_addresses, a_local_name_nobody_maps_is_refused_at_rcpt) {
  start();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO app.test").code, 250);
  ASSERT_EQ(client.command("MAIL FROM:<root>").code, 250);
  const auto reply = client.command("RCPT TO:<www-data>");
  EXPECT_EQ(reply.str(),
            "550 5.1.1 <www-data@relay.test>: no such local user here (no alias maps it)");
  EXPECT_EQ(client.command("RCPT TO:<nobody@localhost>").code, 550);
  EXPECT_EQ(client.command("DATA").code, 554);

  // oauth-relay-sendmail says so and exits 69 (EX_UNAVAILABLE), as cron logs it.
  const auto config = relay_->dir() / "sendmail.yaml";
  std::ofstream(config) << "listen: [\"127.0.0.1:" << relay_->port()
                        << "\"]\nhostname: relay.test\n";
  const auto r = run_command({sendmail_path(), "-c", config.string(), "www-data"}, "x\n");
  EXPECT_EQ(r.status, 69);
  EXPECT_NE(r.err.find("550 5.1.1 <www-data@relay.test>"), std::string::npos) << r.err;
  EXPECT_EQ(google_.message_count(), 0u);
}

TEST_F(local_addresses, a_bounce_to_a_local_sender_reaches_its_alias) {
  start();
  google_.gmail().reject_recipient("gone@example.org");
  smtp_client client(relay_->port());
  const auto reply =
      client.send_message("root", {"gone@example.org"}, "Subject: to a gone address\r\n\r\nx\r\n");
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 15s)) << relay_->log();
  const auto bounce = google_.messages().at(0);
  EXPECT_EQ(bounce.sender, "");
  EXPECT_EQ(bounce.recipients, std::vector<std::string>{"admin@example.org"});
  EXPECT_NE(bounce.content.find("To: <root@relay.test>\r\n"), std::string::npos) << bounce.content;
  EXPECT_NE(bounce.content.find("Final-Recipient: rfc822; gone@example.org"), std::string::npos);
}

// RFC 3461 §4.2: the report about an alias's address names the address given.
TEST_F(local_addresses, a_bounce_about_an_alias_names_the_original_recipient) {
  start("aliases:\n  root: [gone@example.org]\n");
  google_.gmail().reject_recipient("gone@example.org");
  smtp_client client(relay_->port());
  const auto reply =
      client.send_message(google_fakes::account, {"root"}, "Subject: for root\r\n\r\nx\r\n");
  ASSERT_EQ(reply.code, 250) << reply.str();
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 15s)) << relay_->log();
  const auto bounce = google_.messages().at(0);
  EXPECT_EQ(bounce.recipients, std::vector<std::string>{google_fakes::account});
  EXPECT_NE(bounce.content.find("Original-Recipient: rfc822;root@localhost\r\n"
                                "Final-Recipient: rfc822; gone@example.org\r\n"),
            std::string::npos)
      << bounce.content;
}

TEST_F(local_addresses, check_config_refuses_a_loop_with_file_and_line) {
  // Lines 1-3 are the harness's (listen, state_dir, health_socket).
  relay_process relay("aliases:\n  root: [admin]\n  admin: [root@localhost]\n" +
                      minimal_config_body());
  const auto r = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(r.status, 1);
  const std::string file = relay.config_path().string();
  EXPECT_NE(
      r.err.find(file + ":5: alias loop: root -> admin -> root (" + file + ":5, " + file + ":6)"),
      std::string::npos)
      << r.err;
  // The daemon does not start with it either.
  EXPECT_THROW(relay.start(), std::exception);
}

TEST_F(local_addresses, check_config_refuses_a_target_nobody_maps) {
  relay_process relay("aliases:\n  root: [admin]\n" + minimal_config_body());
  const auto r = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(relay.config_path().string() +
                       ":5: alias \"root\": \"admin\" is a local address that no alias maps"),
            std::string::npos)
      << r.err;
}

TEST_F(local_addresses, aliases_file_is_read_and_what_cannot_be_sent_to_is_skipped) {
  temp_dir dir;
  const auto file = dir.path() / "aliases";
  std::ofstream(file) << "# as Debian ships it\n"
                         "mailer-daemon: postmaster\n"
                         "postmaster: root\n"
                         "list: \"|/usr/bin/list-handler\"\n"
                         "root: admin@example.org\n";
  relay_process relay(
      google_.config("local_domains: [relay.test]\naliases_file: " + file.string() + "\n"));
  const auto check =
      run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(check.status, 0) << check.err;
  EXPECT_NE(check.err.find("warning: " + file.string() +
                           ":4: alias \"list\": the command \"|/usr/bin/list-handler\" is skipped"),
            std::string::npos)
      << check.err;

  const auto table = run_command({relayctl_path(), "-c", relay.config_path().string(), "aliases"});
  EXPECT_EQ(table.status, 0) << table.err;
  EXPECT_EQ(table.out,
            "local domains: relay.test (bare names get @relay.test)\n"
            "NAME           DELIVERED TO       FROM\n"
            "mailer-daemon  admin@example.org  " +
                file.string() +
                ":2\n"
                "postmaster     admin@example.org  " +
                file.string() +
                ":3\n"
                "root           admin@example.org  " +
                file.string() + ":5\n");
  const auto json =
      run_command({relayctl_path(), "-c", relay.config_path().string(), "aliases", "--json"});
  EXPECT_EQ(json.status, 0) << json.err;
  EXPECT_NE(json.out.find("\"local_domains\": [\n    \"relay.test\"\n  ]"), std::string::npos)
      << json.out;
  EXPECT_NE(json.out.find("\"name\": \"root\""), std::string::npos) << json.out;
}

TEST_F(local_addresses, sighup_reloads_the_aliases_and_keeps_them_when_the_new_ones_loop) {
  start();
  relay_->write_config(google_.config("aliases:\n  root: [other@example.org]\n"));
  relay_->signal(SIGHUP);
  ASSERT_TRUE(relay_->wait_for_log("event=config_reloaded")) << relay_->log();
  smtp_client client(relay_->port());
  ASSERT_EQ(client.send_message("root", {"root"}, "Subject: one\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(google_.gmail().wait_for_messages(1, 15s)) << relay_->log();
  EXPECT_EQ(google_.messages().at(0).recipients, std::vector<std::string>{"other@example.org"});

  relay_->write_config(google_.config("aliases:\n  root: [root]\n"));
  relay_->signal(SIGHUP);
  ASSERT_TRUE(relay_->wait_for_log("event=aliases_reload_failed")) << relay_->log();
  ASSERT_TRUE(relay_->wait_for_log("keeping the running aliases")) << relay_->log();
  smtp_client again(relay_->port());
  ASSERT_EQ(again.send_message("root", {"root"}, "Subject: two\r\n\r\nx\r\n").code, 250);
  ASSERT_TRUE(google_.gmail().wait_for_messages(2, 15s)) << relay_->log();
  EXPECT_EQ(google_.messages().at(1).recipients, std::vector<std::string>{"other@example.org"});
}

}  // namespace
}  // namespace oauth_relay::test_support
