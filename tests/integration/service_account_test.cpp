// Google Workspace service accounts end to end: the real oauth-relayd and
// oauth-relayctl against the in-repo token endpoint (which verifies each JWT
// bearer assertion with the public half of a key made for the test) and Gmail
// over real TLS. A domain pattern sends each sender as itself; a refused
// delegation waits with its hint until `oauth-relayctl test` shows it fixed.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "auth/token_store.hpp"
#include "fakes/fake_gmail.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "fakes/test_service_account.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gmail;
using fakes::fake_oauth;

constexpr const char* alice = "alice@example.com";
constexpr const char* bob = "bob@example.com";
constexpr const char* mail_scope = "https://mail.google.com/";

class service_account : public testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = pki_.write_ca(scratch_.path() / "ca.pem");
    key_file_ = sa_.write_key_file(scratch_.path() / "service-account.json", oauth_.token_url());
    oauth_.add_service_account(sa_.client_email, sa_.client_id, sa_.private_key_id,
                               sa_.public_key_pem);
    gmail_.set_token_validator([this](const std::string& user, const std::string& token) {
      return oauth_.token_valid(user, token);
    });
  }

  void TearDown() override {
    if (HasFailure() && relay_) std::cerr << "---- oauth-relayd log\n" << relay_->log();
  }

  void start() {
    relay_ = std::make_unique<relay_process>(
        "hostname: relay.test\n"
        "upstream:\n  host: 127.0.0.1\n  port: " +
        std::to_string(gmail_.port()) + "\n  tls: starttls\n  ca_file: " + ca_file_.string() +
        "\nqueue:\n  retry_initial: 1s\n  retry_max: 2s\n"
        "oauth:\n  client_id: \"" +
        fake_oauth::default_client_id + "\"\n  client_secret: \"" +
        fake_oauth::default_client_secret + "\"\n  token_url: " + oauth_.token_url() +
        "\n  ca_file: " + ca_file_.string() +
        "\naccounts:\n"
        "  - address: \"*@example.com\"\n"
        "    service_account_file: " +
        key_file_.string() + "\n");
    relay_->start();
  }

  client_reply send(const std::string& from, const std::string& tag) {
    smtp_client client(relay_->port());
    return client.send_message(from, {"someone@example.org"},
                               "From: " + from + "\r\nSubject: " + tag + "\r\n\r\n" + tag + "\r\n");
  }

  ctl_result ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", relay_->config_path().string()});
    auto r = run_ctl(args);
    const std::string key_body = sa_.private_key_pem.substr(28, 64);
    EXPECT_EQ(r.out.find(key_body), std::string::npos) << "the key on stdout";
    EXPECT_EQ(r.err.find(key_body), std::string::npos) << "the key on stderr";
    return r;
  }

  std::size_t queued() {
    relay::spool_reader reader(relay_->state_dir());
    return reader.messages().value().size();
  }

  std::string token_step(const std::string& mailbox) const {
    return "access token for " + mailbox + " from " + oauth_.token_url() +
           " (domain-wide delegation, scope https://mail.google.com/)";
  }

  temp_dir scratch_;
  fakes::test_pki pki_;
  fake_oauth oauth_{pki_};
  fake_gmail gmail_{fake_gmail::mode::starttls, pki_.issue({"localhost"}, {"127.0.0.1"})};
  fakes::test_service_account sa_ = fakes::test_service_account::generate();
  std::filesystem::path ca_file_;
  std::filesystem::path key_file_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(service_account, a_domain_pattern_sends_each_sender_as_itself) {
  oauth_.delegate(sa_.client_id, "example.com", mail_scope);
  start();
  ASSERT_EQ(send(alice, "from-alice").code, 250);
  ASSERT_EQ(send(bob, "from-bob").code, 250);
  ASSERT_TRUE(gmail_.wait_for_messages(2, 15s));
  std::vector<std::string> users;
  for (const auto& m : gmail_.messages()) {
    EXPECT_EQ(m.user, m.sender) << "XOAUTH2 user= is the sender";
    users.push_back(m.user);
  }
  std::sort(users.begin(), users.end());
  EXPECT_EQ(users, (std::vector<std::string>{alice, bob}));
  auto subjects = oauth_.assertion_subjects();
  std::sort(subjects.begin(), subjects.end());
  EXPECT_EQ(subjects, (std::vector<std::string>{alice, bob}));
  EXPECT_EQ(gmail_.auth_failures(), 0u);

  // Tokens live in the daemon's memory: no row for any mailbox.
  {
    auth::token_store store(relay_->state_dir(), token_key(relay_->key_file()));
    EXPECT_TRUE(store.load_all().empty());
  }
  // A sender outside the domain routes nowhere.
  EXPECT_EQ(send("eve@example.org", "from-eve").code, 550);

  const auto listing = ctl({"accounts", "--json"});
  ASSERT_EQ(listing.status, 0) << listing.err;
  const auto accounts = nlohmann::json::parse(listing.out)["accounts"];
  ASSERT_EQ(accounts.size(), 3u) << listing.out;
  EXPECT_EQ(accounts[0]["address"], "*@example.com");
  EXPECT_EQ(accounts[0]["kind"], "service_account");
  EXPECT_EQ(accounts[0]["token_state"], "per_mailbox");
  EXPECT_EQ(accounts[0]["service_account"], sa_.client_email);
  for (const auto& i : {1, 2}) {
    EXPECT_EQ(accounts[i]["token_state"], "valid");
    EXPECT_EQ(accounts[i]["pattern"], "*@example.com");
  }
  const auto table = ctl({"accounts"});
  ASSERT_GE(table.out_lines.size(), 2u);
  EXPECT_EQ(table.out_lines[0].substr(0, 21), "ADDRESS            KI");
  EXPECT_NE(table.out_lines[1].find("service account " + sa_.client_email + "  per mailbox"),
            std::string::npos)
      << table.out;
}

TEST_F(service_account, refused_delegation_waits_with_its_hint_until_test_shows_it_fixed) {
  start();
  ASSERT_EQ(send(alice, "waits").code, 250);
  ASSERT_TRUE(relay_->wait_for_log("event=account_mail_waiting", 15s));
  const std::string log = relay_->log();
  EXPECT_NE(log.find("event=token_refresh_failed account=alice@example.com"), std::string::npos);
  EXPECT_NE(log.find("Security > API controls > Domain-wide delegation"), std::string::npos);
  EXPECT_NE(log.find("client ID " + sa_.client_id), std::string::npos);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(gmail_.messages().size(), 0u);
  EXPECT_EQ(queued(), 1u);  // waiting, not bounced

  const auto refused = ctl({"test", alice});
  EXPECT_EQ(refused.status, 1);
  EXPECT_EQ(refused.out_lines,
            (std::vector<std::string>{"[ok]     service account key " + key_file_.string() + " (" +
                                          sa_.client_email + ", client ID " + sa_.client_id + ")",
                                      "[failed] " + token_step(alice),
                                      "verdict: alice@example.com cannot send mail"}));
  EXPECT_EQ(refused.err_lines,
            (std::vector<std::string>{
                "error: Google refused the service account " + sa_.client_email +
                    " a token for alice@example.com (unauthorized_client): domain-wide "
                    "delegation is not granted to its client ID " +
                    sa_.client_id + " for the scope https://mail.google.com/",
                "hint: a Google Workspace super administrator must, in the Admin console "
                "(admin.google.com) > Security > API controls > Domain-wide delegation, add (or "
                "edit) the client ID " +
                    sa_.client_id +
                    " with the OAuth scope https://mail.google.com/ (it can take some minutes to "
                    "apply), then run: oauth-relayctl test alice@example.com"}));

  // The administrator grants it; the test passes and the daemon sends at once.
  oauth_.delegate(sa_.client_id, "example.com", mail_scope);
  const auto passed = ctl({"test", alice});
  EXPECT_EQ(passed.status, 0) << passed.err;
  ASSERT_EQ(passed.out_lines.size(), 6u) << passed.out;
  EXPECT_EQ(passed.out_lines[1], "[ok]     " + token_step(alice) + " (valid for 59m)");
  EXPECT_EQ(passed.out_lines[3], "[ok]     authenticate as alice@example.com with XOAUTH2");
  ASSERT_TRUE(gmail_.wait_for_messages(1, 15s));
  EXPECT_EQ(gmail_.messages().back().user, alice);
}

TEST_F(service_account, authorize_needs_no_consent_and_import_has_nothing_to_take) {
  start();
  const auto authorize = ctl({"authorize", bob});
  EXPECT_EQ(authorize.status, 0) << authorize.err;
  EXPECT_EQ(authorize.out_lines,
            (std::vector<std::string>{
                "bob@example.com needs no consent: it sends through the service account " +
                sa_.client_email + " (" + key_file_.string() +
                ") with domain-wide delegation; check it with: oauth-relayctl test "
                "bob@example.com"}));
  const auto import = run_ctl({"-c", relay_->config_path().string(), "import", bob,
                               "--refresh-token-file", "-", "--no-verify"},
                              "1//x");
  EXPECT_EQ(import.status, 1);
  EXPECT_EQ(import.err_lines.at(0), "error: bob@example.com is a service account (" +
                                        sa_.client_email +
                                        "): it has no refresh token to import; its key file is "
                                        "its credential");
  const auto pattern = ctl({"test", "*@example.com"});
  EXPECT_EQ(pattern.status, 1);
  EXPECT_EQ(pattern.err_lines.at(0), "error: *@example.com is a domain pattern, not a mailbox");
}

TEST_F(service_account, check_config_takes_the_key_and_names_a_key_openssl_refuses) {
  relay_process relay(
      "oauth:\n  client_id: id\n  client_secret: s\naccounts:\n"
      "  - address: \"*@example.com\"\n    service_account_file: " +
      key_file_.string() + "\n");
  auto r = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(r.status, 0) << r.err;
  auto broken = sa_;
  broken.private_key_pem =
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
  broken.write_key_file(key_file_, oauth_.token_url());
  r = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err,
            key_file_.string() + ": its private_key is not a PEM private key OpenSSL can read\n");
}

TEST_F(service_account, check_config_names_a_key_others_may_read) {
  std::filesystem::permissions(key_file_, std::filesystem::perms(0644));
  relay_process relay(
      "oauth:\n  client_id: id\n  client_secret: s\naccounts:\n"
      "  - address: \"*@example.com\"\n    service_account_file: " +
      key_file_.string() + "\n");
  const auto r = run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("accounts[0].service_account_file: " + key_file_.string() +
                       " may be read by every user (mode 0644)"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace oauth_relay::test_support
