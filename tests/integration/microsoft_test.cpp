// Microsoft 365 beside Gmail end to end: the real oauth-relayd with a Google
// account and Microsoft accounts (delegated with rotating refresh tokens, and
// app-only), each message to its own upstream stand-in over real TLS; Exchange's
// direct 535 and SendAsDenied; a crash while Microsoft's rotated answer is on
// its way; limits.messages_per_minute pacing the mailbox.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "auth/token_store.hpp"
#include "fakes/fake_gmail.hpp"
#include "fakes/fake_microsoft.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gmail;
using fakes::fake_microsoft;
using fakes::fake_oauth;

constexpr const char* google_account = "g@example.com";
constexpr const char* ms_account = "it@contoso.com";
constexpr const char* app_account = "alerts@contoso.com";
constexpr const char* exchange_535 = "535 5.7.3 Authentication unsuccessful [fake.outlook]\r\n";

class microsoft : public testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = pki_.write_ca(scratch_.path() / "ca.pem");
    secret_file_ = scratch_.path() / "ms-secret";
    std::ofstream(secret_file_) << microsoft_.client_secret() << "\n";
    gmail_.set_token_validator([this](const std::string& user, const std::string& token) {
      return oauth_.token_valid(user, token);
    });
    exchange_.set_token_validator([this](const std::string& user, const std::string& token) {
      return microsoft_.token_valid(user, token);
    });
    exchange_.set_auth_failure_reply(exchange_535);
    oauth_.add_account(google_account, "g-refresh-1");
    microsoft_.add_account(ms_account, "ms-refresh-1");
    microsoft_.grant_app_mailbox(app_account);
  }

  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  // `ms_extra` lines go under the delegated Microsoft account (four spaces).
  std::string config(const std::string& ms_extra = "") const {
    const std::string ca = ca_file_.string();
    return "hostname: relay.test\n"
           "upstream:\n  host: 127.0.0.1\n  port: " +
           std::to_string(gmail_.port()) + "\n  tls: starttls\n  ca_file: " + ca +
           "\nqueue:\n  retry_initial: 1s\n  retry_max: 2s\n"
           "oauth:\n  client_id: \"" +
           fake_oauth::default_client_id + "\"\n  client_secret: \"" +
           fake_oauth::default_client_secret + "\"\n  token_url: " + oauth_.token_url() +
           "\n  ca_file: " + ca +
           "\nproviders:\n  google: {}\n  microsoft:\n    tenant: " + microsoft_.tenant() +
           "\n    client_id: \"" + microsoft_.client_id() +
           "\"\n    client_secret_file: " + secret_file_.string() +
           "\n    authority: " + microsoft_.authority() + "\n    ca_file: " + ca +
           "\n    upstream: {host: 127.0.0.1, port: " + std::to_string(exchange_.port()) +
           ", tls: starttls, ca_file: " + ca +
           "}\n"
           "accounts:\n"
           "  - address: " +
           google_account + "\n  - address: " + ms_account + "\n    provider: microsoft\n" +
           ms_extra + "  - address: " + app_account +
           "\n    provider: microsoft\n    app_only: true\n";
  }

  void start(const std::string& ms_extra = "") {
    relay_ = std::make_unique<relay_process>(config(ms_extra));
    // As `oauth-relayctl import` does: the refresh tokens go into the store.
    std::filesystem::create_directories(relay_->state_dir());
    std::filesystem::permissions(relay_->state_dir(), std::filesystem::perms::owner_all);
    {
      auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
      store.store_refresh_token(google_account, "g-refresh-1");
      store.store_refresh_token(ms_account, "ms-refresh-1");
    }
    relay_->start();
  }

  client_reply send(const std::string& from, const std::string& tag) {
    smtp_client client(relay_->port());
    return client.send_message(from, {"someone@example.org"},
                               "From: " + from + "\r\nSubject: " + tag + "\r\n\r\n" + tag + "\r\n");
  }

  // The delegated Microsoft account's entry in the control socket's /accounts.
  nlohmann::json ms_entry() {
    const auto r =
        run_command({"curl", "--silent", "--max-time", "10", "--unix-socket",
                     (relay_->dir() / "control.sock").string(), "http://localhost/accounts"});
    EXPECT_EQ(r.status, 0) << r.err;
    const auto all = nlohmann::json::parse(r.out, nullptr, false);
    if (all.is_object() && all["accounts"].is_array()) {
      for (const auto& a : all["accounts"]) {
        if (a["address"] == ms_account) return a;
      }
    }
    return nlohmann::json::object();
  }

  std::vector<relay::queued_message> queue() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value();
  }

  // Polls `done` for up to `timeout`.
  template <typename Predicate>
  bool eventually(Predicate done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(100ms);
    }
    return false;
  }

  std::string stored_refresh_token(const std::string& account) {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    const auto row = store.get(account);
    return row ? std::string(row->refresh_token) : std::string();
  }

  temp_dir scratch_;
  fakes::test_pki pki_;
  fake_oauth oauth_{pki_};
  fake_microsoft microsoft_{pki_};
  fake_gmail gmail_{fake_gmail::mode::starttls, pki_.issue({"localhost"}, {"127.0.0.1"})};
  fake_gmail exchange_{fake_gmail::mode::starttls, pki_.issue({"localhost"}, {"127.0.0.1"})};
  std::filesystem::path ca_file_;
  std::filesystem::path secret_file_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(microsoft, each_account_reaches_its_own_upstream) {
  start();
  ASSERT_EQ(send(google_account, "to-gmail").code, 250);
  ASSERT_EQ(send(ms_account, "to-exchange").code, 250);
  ASSERT_EQ(send(app_account, "app-only").code, 250);
  ASSERT_TRUE(gmail_.wait_for_messages(1, 15s));
  ASSERT_TRUE(exchange_.wait_for_messages(2, 15s));

  const auto at_gmail = gmail_.messages();
  ASSERT_EQ(at_gmail.size(), 1u);
  EXPECT_EQ(at_gmail[0].user, google_account);
  EXPECT_NE(at_gmail[0].content.find("\r\n\r\nto-gmail\r\n"), std::string::npos);
  std::vector<std::string> users;
  for (const auto& m : exchange_.messages()) {
    EXPECT_EQ(m.user, m.sender);
    users.push_back(m.user);
  }
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{app_account, ms_account}));
  EXPECT_EQ(gmail_.auth_failures(), 0u);
  EXPECT_EQ(exchange_.auth_failures(), 0u);

  // The delegated account's refresh asked for SMTP.Send, and Microsoft's
  // rotated refresh token replaced the old one in the store.
  EXPECT_EQ(microsoft_.refreshes_served(), 1u);
  const auto issued = microsoft_.refresh_tokens_of(ms_account);
  ASSERT_EQ(issued.size(), 2u);
  EXPECT_EQ(stored_refresh_token(ms_account), issued[1]);
  EXPECT_EQ(stored_refresh_token(google_account), "g-refresh-1");
  // The app-only account: one client credentials grant, no row in the store.
  EXPECT_EQ(microsoft_.client_credentials_served(), 1u);
  {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    EXPECT_FALSE(store.get(app_account));
  }
}

TEST_F(microsoft, the_refresh_asks_for_smtp_send_with_the_clients_secret) {
  start();
  ASSERT_EQ(send(ms_account, "scope").code, 250);
  ASSERT_TRUE(exchange_.wait_for_messages(1, 15s));
  EXPECT_EQ(microsoft_.refreshes_served(), 1u);
  const auto refresh = microsoft_.last_refresh_request();
  EXPECT_EQ(refresh.at("scope"), "https://outlook.office.com/SMTP.Send offline_access");
  EXPECT_EQ(refresh.at("refresh_token"), "ms-refresh-1");
  EXPECT_EQ(refresh.at("client_id"), microsoft_.client_id());
  EXPECT_EQ(refresh.at("client_secret"), microsoft_.client_secret());
}

TEST_F(microsoft, exchanges_direct_535_gets_one_refresh_and_a_retry) {
  start();
  exchange_.reject_auth(1);
  ASSERT_EQ(send(ms_account, "after-535").code, 250);
  ASSERT_TRUE(exchange_.wait_for_messages(1, 15s));
  EXPECT_EQ(exchange_.auth_failures(), 1u);
  // No 334 step: the relay sent nothing between AUTH and the 535.
  const auto commands = exchange_.commands();
  EXPECT_EQ(std::count(commands.begin(), commands.end(), ""), 0);
  // The refused token was replaced by a new refresh (and the token rotated again).
  EXPECT_EQ(microsoft_.refreshes_served(), 2u);
  EXPECT_EQ(stored_refresh_token(ms_account), microsoft_.refresh_tokens_of(ms_account).back());
}

TEST_F(microsoft, a_crash_before_the_rotated_token_is_stored_leaves_a_working_token) {
  // Microsoft has rotated (issued a new refresh token) but its answer is
  // still on its way when the daemon dies: the store holds the old token,
  // which Microsoft keeps valid.
  microsoft_.set_delay(3s);
  start();
  ASSERT_EQ(send(ms_account, "crash").code, 250);
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while (microsoft_.refreshes_served() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(microsoft_.refreshes_served(), 1u);
  relay_->kill9();
  EXPECT_EQ(stored_refresh_token(ms_account), "ms-refresh-1");
  ASSERT_EQ(microsoft_.refresh_tokens_of(ms_account).size(), 2u);

  microsoft_.set_delay(0ms);
  relay_->start();
  ASSERT_TRUE(exchange_.wait_for_messages(1, 15s));
  EXPECT_EQ(exchange_.messages()[0].user, ms_account);
  // The old token was refreshed again; its new successor is what is stored now.
  const auto issued = microsoft_.refresh_tokens_of(ms_account);
  ASSERT_EQ(issued.size(), 3u);
  EXPECT_EQ(stored_refresh_token(ms_account), issued[2]);
}

TEST_F(microsoft, test_names_smtp_auth_disabled_with_the_set_casmailbox_fix) {
  start();
  exchange_.set_auth_failure_reply(
      "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
      "Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.\r\n");
  exchange_.reject_auth(1);
  const auto r = run_ctl({"-c", relay_->config_path().string(), "test", ms_account});
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("[ok]     access token from " + microsoft_.authority() + "/" +
                       microsoft_.tenant() + "/oauth2/v2.0/token"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.err.find("error: Exchange Online has SMTP AUTH turned off for it@contoso.com or "
                       "its organization (535 5.7.139 Authentication unsuccessful"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("hint: an Exchange administrator runs, in Exchange Online PowerShell: "
                       "Set-CASMailbox -Identity it@contoso.com -SmtpClientAuthenticationDisabled "
                       "$false"),
            std::string::npos)
      << r.err;
}

TEST_F(microsoft, an_expired_refresh_token_waits_with_microsofts_cause) {
  microsoft_.revoke("ms-refresh-1");
  start();
  ASSERT_EQ(send(ms_account, "waits").code, 250);
  // The daemon's refresh at start: its log line names Microsoft's cause and the fix.
  EXPECT_TRUE(
      relay_->wait_for_log("reason=\"Microsoft refused the refresh token of "
                           "it@contoso.com: it expired (unused for 90 days) or was revoked "
                           "(AADSTS700082",
                           15s));
  EXPECT_TRUE(relay_->wait_for_log(
      "hint=\"run oauth-relayctl authorize it@contoso.com to get a new one\"", 5s));
  const auto r = run_ctl({"-c", relay_->config_path().string(), "test", ms_account});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("hint: run oauth-relayctl authorize it@contoso.com to get a new one"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(exchange_.message_count(), 0u);
}

TEST_F(microsoft, a_wrong_client_secret_names_the_secrets_value) {
  std::ofstream(secret_file_) << "the-secret-id-not-its-value\n";
  start();
  const auto r = run_ctl({"-c", relay_->config_path().string(), "test", app_account});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("error: Microsoft refused the app's client secret (AADSTS7000215: "),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("Value (not its Secret ID)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("the-secret-id-not-its-value"), std::string::npos);
}

TEST_F(microsoft, test_of_an_app_only_account_logs_in_with_the_apps_token) {
  start();
  const auto r = run_ctl({"-c", relay_->config_path().string(), "test", app_account});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("[ok]     app-only access token from " + microsoft_.authority() + "/" +
                       microsoft_.tenant() +
                       "/oauth2/v2.0/token (client credentials, scope "
                       "https://outlook.office365.com/.default)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("verdict: alerts@contoso.com can send mail through 127.0.0.1:" +
                       std::to_string(exchange_.port())),
            std::string::npos)
      << r.out;
}

TEST_F(microsoft, messages_per_minute_holds_the_fourth_until_the_first_is_a_minute_old) {
  start("    limits: {messages_per_minute: 3}\n");
  for (int i = 0; i < 5; ++i) {
    ASSERT_EQ(send(ms_account, "paced-" + std::to_string(i)).code, 250) << i;
  }
  ASSERT_TRUE(exchange_.wait_for_messages(3, 15s));
  // The account is held by its own limit, as messages_per_day holds it.
  ASSERT_TRUE(eventually([&] { return ms_entry()["sending_state"] == "over_quota"; }, 15s))
      << ms_entry().dump();
  const auto entry = ms_entry();
  EXPECT_EQ(entry["sending_reason"],
            "limits.messages_per_minute (3) reached: 3 messages sent in the last minute");
  EXPECT_TRUE(entry["resumes_at"].is_string()) << entry.dump();
  EXPECT_EQ(entry["sent_24h"], 3);
  EXPECT_EQ(exchange_.message_count(), 3u);
  EXPECT_EQ(queue().size(), 2u);

  // The other two go once the window has room, each no sooner than a minute
  // after the one whose place it takes.
  ASSERT_TRUE(exchange_.wait_for_messages(5, 90s));
  auto at_exchange = exchange_.messages();
  ASSERT_EQ(at_exchange.size(), 5u);
  std::sort(at_exchange.begin(), at_exchange.end(),
            [](const auto& a, const auto& b) { return a.accepted_at < b.accepted_at; });
  EXPECT_GE(at_exchange[3].accepted_at - at_exchange[0].accepted_at, 60s);
  EXPECT_GE(at_exchange[4].accepted_at - at_exchange[1].accepted_at, 60s);
  // Each exactly once, and nothing bounced.
  std::vector<std::string> tags;
  for (const auto& m : at_exchange) {
    EXPECT_EQ(m.sender, ms_account);
    const auto body = m.content.rfind("\r\n\r\n");
    ASSERT_NE(body, std::string::npos);
    tags.push_back(m.content.substr(body + 4));
  }
  std::sort(tags.begin(), tags.end());
  EXPECT_EQ(tags, (std::vector<std::string>{"paced-0\r\n", "paced-1\r\n", "paced-2\r\n",
                                            "paced-3\r\n", "paced-4\r\n"}));
  EXPECT_TRUE(eventually([&] { return queue().empty(); }, 15s));
  EXPECT_EQ(relay_->log().find("bounce="), std::string::npos);
  EXPECT_EQ(relay_->log().find("event=delivery_failed"), std::string::npos);
}

TEST_F(microsoft, send_as_denied_bounces_and_the_log_says_how_to_grant_send_as) {
  start("    senders: [it@contoso.com, boss@contoso.com]\n");
  exchange_.deny_send_as("boss@contoso.com");
  ASSERT_EQ(send("boss@contoso.com", "denied").code, 250);
  EXPECT_TRUE(relay_->wait_for_log(
      "account=it@contoso.com reason=\"Exchange Online refused to send as this sender from "
      "it@contoso.com (SendAsDenied: 554 5.2.252 SendAsDenied; it@contoso.com not allowed to "
      "send as boss@contoso.com; STOREDRV.Submission.Exception:SendAsDeniedException",
      15s));
  EXPECT_TRUE(relay_->wait_for_log(
      "hint=\"grant it@contoso.com Send As on the sender's mailbox (Exchange admin center > "
      "Recipients > Mailboxes > the sender > Delegation), or send with it@contoso.com as the "
      "envelope sender\"",
      5s));
  // A 5xx: the message failed, and its sender hears it in a bounce (sent
  // through the same mailbox with the null sender, which Exchange takes).
  EXPECT_TRUE(relay_->wait_for_log("bounce=\"sent to sender\"", 5s));
  ASSERT_TRUE(exchange_.wait_for_messages(1, 15s));
  const auto at_exchange = exchange_.messages();
  ASSERT_EQ(at_exchange.size(), 1u);
  EXPECT_EQ(at_exchange[0].user, ms_account);
  EXPECT_EQ(at_exchange[0].sender, "");
  EXPECT_EQ(at_exchange[0].recipients, std::vector<std::string>{"boss@contoso.com"});
  EXPECT_NE(at_exchange[0].content.find("554 5.2.252 SendAsDenied; it@contoso.com not allowed"),
            std::string::npos)
      << at_exchange[0].content;
  EXPECT_TRUE(eventually([&] { return queue().empty(); }, 15s));
}

}  // namespace
}  // namespace oauth_relay::test_support
