// The real oauth-relayctl authorize for Microsoft accounts against the
// identity platform stand-in over HTTPS: the device code flow (polling with
// authorization_pending and slow_down, the consenting account checked, the
// refusals) and the loopback flow with PKCE through the provider's authorize URL.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "auth/consent.hpp"
#include "auth/token_store.hpp"
#include "fakes/fake_microsoft.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_microsoft;

constexpr const char* it = "it@contoso.com";

class ctl_microsoft_authorize : public testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = pki_.write_ca(dir_.path() / "ca.pem");
    std::filesystem::create_directories(state_dir_);
    // Only Microsoft accounts: no oauth section is needed. A public client
    // (no client secret), as the device code flow allows.
    std::ofstream(config_) << "listen: [\"127.0.0.1:0\"]\n"
                           << "hostname: relay.test\n"
                           << "state_dir: " << state_dir_.string() << "\n"
                           << "health_socket: " << (dir_.path() / "health.sock").string() << "\n"
                           << secrets_config(key_file_) << "providers:\n  microsoft:\n"
                           << "    tenant: " << microsoft_.tenant() << "\n"
                           << "    client_id: \"" << microsoft_.client_id() << "\"\n"
                           << "    authority: " << microsoft_.authority() << "\n"
                           << "    ca_file: " << ca_file_.string() << "\n"
                           << "accounts:\n  - address: " << it << "\n    provider: microsoft\n";
    microsoft_.set_device_interval(1s);
  }

  void TearDown() override {
    if (HasFailure() && process_) {
      std::cerr << "---- oauth-relayctl stdout\n"
                << process_->out() << "---- stderr\n"
                << process_->err();
    }
  }

  int authorize(std::vector<std::string> extra) {
    std::vector<std::string> args = {"-c", config_.string(), "authorize", it};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ctl_process>(args);
    return process_->wait(60s);
  }

  std::optional<auth::account_record> stored() {
    auth::token_store store(state_dir_, token_key(key_file_));
    return store.get(it);
  }

  temp_dir dir_;
  fakes::test_pki pki_;
  fake_microsoft microsoft_{pki_};
  std::filesystem::path ca_file_;
  std::filesystem::path config_ = dir_.path() / "config.yaml";
  std::filesystem::path state_dir_ = dir_.path() / "state";
  std::filesystem::path key_file_ = write_token_key(dir_.path());
  std::unique_ptr<ctl_process> process_;
};

TEST_F(ctl_microsoft_authorize, device_code_polls_through_pending_and_slow_down) {
  microsoft_.script_device_polls({"authorization_pending", "slow_down"});
  microsoft_.set_consenting_account(it);
  ASSERT_EQ(authorize({"--device"}), 0);
  EXPECT_EQ(process_->out_lines()[0],
            "To authorize it@contoso.com, open https://microsoft.com/devicelogin in a browser on "
            "any device, enter the code FAKE1001 and sign in as it@contoso.com.");
  EXPECT_EQ(process_->out_lines()[1], "authorized it@contoso.com: refresh token stored");
  EXPECT_NE(process_->err().find("The sign-in service asked to poll more slowly: every 6s from "
                                 "now on."),
            std::string::npos);
  // Pending, slow down, then the tokens: three polls.
  EXPECT_EQ(microsoft_.device_polls(), 3u);
  const auto asked = microsoft_.last_device_request();
  EXPECT_EQ(asked.at("client_id"), microsoft_.client_id());
  EXPECT_EQ(asked.at("scope"),
            "https://outlook.office.com/SMTP.Send offline_access openid profile email");
  const auto polled = microsoft_.last_token_request();
  EXPECT_EQ(polled.at("grant_type"), "urn:ietf:params:oauth:grant-type:device_code");
  EXPECT_EQ(polled.count("client_secret"), 0u);

  const auto row = stored();
  ASSERT_TRUE(row);
  EXPECT_EQ(row->refresh_token, microsoft_.refresh_tokens_of(it).back());
  EXPECT_EQ(row->state, auth::token_state::valid);
  EXPECT_TRUE(microsoft_.token_valid(it, row->access_token));
  EXPECT_EQ(process_->out().find(std::string(row->refresh_token)), std::string::npos);
  EXPECT_EQ(process_->err().find(polled.at("device_code")), std::string::npos);
}

TEST_F(ctl_microsoft_authorize, the_id_tokens_preferred_username_must_be_the_address) {
  microsoft_.id_token_without_email(true);
  microsoft_.set_consenting_account("someone.else@contoso.com");
  ASSERT_EQ(authorize({"--device"}), 1);
  EXPECT_NE(process_->err().find("error: the sign-in was made by someone.else@contoso.com, not "
                                 "it@contoso.com; nothing was stored"),
            std::string::npos)
      << process_->err();
  const auto row = stored();
  EXPECT_TRUE(!row || row->refresh_token.empty());
}

TEST_F(ctl_microsoft_authorize, a_declined_or_expired_code_stores_nothing) {
  microsoft_.script_device_polls({"authorization_declined"});
  ASSERT_EQ(authorize({"--device"}), 1);
  EXPECT_NE(process_->err().find("error: the sign-in was declined (authorization_declined); "
                                 "nothing was stored"),
            std::string::npos)
      << process_->err();
  microsoft_.script_device_polls({"authorization_pending", "expired_token"});
  ASSERT_EQ(authorize({"--device"}), 1);
  EXPECT_NE(process_->err().find("error: the code expired before anyone signed in with it "
                                 "(expired_token); nothing was stored"),
            std::string::npos)
      << process_->err();
  const auto row = stored();
  EXPECT_TRUE(!row || row->refresh_token.empty());
}

TEST_F(ctl_microsoft_authorize, loopback_consent_through_the_providers_authorize_url) {
  microsoft_.set_consenting_account(it);
  process_ = std::make_unique<ctl_process>(
      std::vector<std::string>{"-c", config_.string(), "authorize", it, "--no-browser"});
  const auto url = process_->wait_for_line(
      [](const std::string& l) { return l.rfind("https://", 0) == 0; }, 20s);
  ASSERT_TRUE(url) << process_->err();
  EXPECT_EQ(
      url->rfind(microsoft_.authority() + "/" + microsoft_.tenant() + "/oauth2/v2.0/authorize?", 0),
      0u)
      << *url;
  const auto consent = http_get(*url, ca_file_);
  ASSERT_EQ(consent.status, 302) << consent.body;
  const auto asked = microsoft_.last_auth_request();
  EXPECT_EQ(asked.at("scope"),
            "https://outlook.office.com/SMTP.Send offline_access openid profile email");
  EXPECT_EQ(asked.count("access_type"), 0u);
  EXPECT_EQ(asked.at("code_challenge_method"), "S256");
  const auto page = http_get(consent.location);
  EXPECT_EQ(page.status, 200);
  ASSERT_EQ(process_->wait(), 0);
  const auto exchanged = microsoft_.last_token_request();
  EXPECT_EQ(exchanged.at("grant_type"), "authorization_code");
  EXPECT_EQ(auth::s256_challenge(exchanged.at("code_verifier")), asked.at("code_challenge"));
  const auto row = stored();
  ASSERT_TRUE(row);
  EXPECT_EQ(row->refresh_token, microsoft_.refresh_tokens_of(it).back());
}

TEST_F(ctl_microsoft_authorize, device_is_for_microsoft_accounts_only) {
  std::ofstream(config_, std::ios::app) << "  - address: g@example.com\n";
  std::ofstream(config_, std::ios::app) << "oauth:\n  client_id: x\n  client_secret: y\n";
  process_ = std::make_unique<ctl_process>(
      std::vector<std::string>{"-c", config_.string(), "authorize", "g@example.com", "--device"});
  ASSERT_EQ(process_->wait(), 1);
  EXPECT_NE(process_->err().find("error: --device is for Microsoft accounts; g@example.com is a "
                                 "Google account"),
            std::string::npos)
      << process_->err();
}

}  // namespace
}  // namespace oauth_relay::test_support
