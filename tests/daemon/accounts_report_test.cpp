// The accounts listing that the control socket's GET /accounts and
// oauth-relayctl accounts print: config order, states as people read them,
// rows no longer configured at the end, no token's text.
#include "daemon/accounts_report.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace oauth_relay::daemon {
namespace {

using nlohmann::json;

constexpr std::int64_t now = 1'796'025'600;  // 2026-11-30T08:00:00Z

config::account_settings configured(const std::string& address) {
  config::account_settings a;
  a.address = address;
  return a;
}

auth::account_record row(const std::string& address, auth::token_state state) {
  auth::account_record r;
  r.address = address;
  r.state = state;
  r.refresh_token = "1//refresh-" + address;
  return r;
}

TEST(accounts_json, lists_configured_accounts_then_stored_ones_no_longer_configured) {
  auto alice = row("ALICE@example.com", auth::token_state::valid);
  alice.access_token = "ya29.access";
  alice.access_expires_at = now + 1800;
  alice.last_delivery = now - 60;
  alice.authorized_at = now - 86400;
  auto gone = row("gone@example.com", auth::token_state::needs_reauth);
  gone.refresh_token.clear();
  gone.last_error = "token revoked";
  std::map<std::string, account_sending> sending;
  sending["Alice@example.com"] = {"over_quota", now + 3600, "limits.messages_per_day (10) reached",
                                  10};
  sending["bob@example.com"] = {};
  const auto text =
      accounts_json({gone, alice}, {configured("alice@example.com"), configured("bob@example.com")},
                    {}, now, sending);
  EXPECT_EQ(text.find("1//refresh"), std::string::npos) << text;
  EXPECT_EQ(text.find("ya29"), std::string::npos) << text;
  EXPECT_EQ(json::parse(text), json::parse(R"({"accounts":[
    {"address":"alice@example.com","kind":"oauth","token_state":"valid",
     "access_expires_in_seconds":1800,"last_delivery":"2026-11-30T07:59:00Z","last_error":null,
     "configured":true,"service_account":null,"pattern":null,
     "sending_state":"over_quota","resumes_at":"2026-11-30T09:00:00Z",
     "sending_reason":"limits.messages_per_day (10) reached","sent_24h":10,"authorized_at":"2026-11-29T08:00:00Z"},
    {"address":"bob@example.com","kind":"oauth","token_state":"missing",
     "access_expires_in_seconds":null,"last_delivery":null,"last_error":null,"configured":true,
     "service_account":null,"pattern":null,
     "sending_state":"ok","resumes_at":null,"sent_24h":0,"authorized_at":null},
    {"address":"gone@example.com","kind":"oauth","token_state":"needs_reauth",
     "access_expires_in_seconds":null,"last_delivery":null,"last_error":"token revoked",
     "configured":false,"service_account":null,"pattern":null,
     "sending_state":null,"resumes_at":null,"sent_24h":null,"authorized_at":null}]})"));
}

TEST(accounts_json, a_lapsed_valid_token_reads_expired_and_no_refresh_token_reads_missing) {
  auto lapsed = row("a@example.com", auth::token_state::valid);
  lapsed.access_token = "ya29.old";
  lapsed.access_expires_at = now - 5;
  auto empty = row("b@example.com", auth::token_state::expired);
  empty.refresh_token.clear();
  const auto body = json::parse(accounts_json(
      {lapsed, empty}, {configured("a@example.com"), configured("b@example.com")}, {}, now));
  EXPECT_EQ(body["accounts"][0]["token_state"], "expired");
  EXPECT_EQ(body["accounts"][0]["access_expires_in_seconds"], 0);
  EXPECT_EQ(body["accounts"][1]["token_state"], "missing");
}

config::account_settings service(const std::string& address) {
  auto a = configured(address);
  auto key = std::make_shared<config::service_account_key>();
  key->client_email = "relay@project.iam.gserviceaccount.com";
  a.service_account = std::move(key);
  return a;
}

TEST(accounts_json, service_accounts_come_from_the_daemons_memory_with_their_client_email) {
  auth::account_status alice;
  alice.address = "alice@example.com";
  alice.state = auth::token_state::valid;
  alice.access_expires_in_seconds = 3000;
  alice.service_account = "relay@project.iam.gserviceaccount.com";
  auth::account_status bob = alice;
  bob.address = "bob@example.com";
  bob.state = auth::token_state::needs_reauth;
  bob.access_expires_in_seconds.reset();
  bob.last_error = "account bob@example.com needs attention: delegation";
  auth::account_status other = alice;  // consent account, never listed as a mailbox
  other.address = "carol@example.com";
  other.service_account.clear();
  // A row left from before noreply became a service account is not its state.
  const auto body = json::parse(accounts_json(
      {row("noreply@example.org", auth::token_state::valid)},
      {service("*@example.com"), service("noreply@example.org")}, {alice, bob, other}, now));
  EXPECT_EQ(body, json::parse(R"({"accounts":[
    {"address":"*@example.com","kind":"service_account","token_state":"per_mailbox",
     "access_expires_in_seconds":null,"last_delivery":null,"last_error":null,"configured":true,
     "service_account":"relay@project.iam.gserviceaccount.com","pattern":null,
     "sending_state":null,"resumes_at":null,"sent_24h":null,"authorized_at":null},
    {"address":"alice@example.com","kind":"service_account","token_state":"valid",
     "access_expires_in_seconds":3000,"last_delivery":null,"last_error":null,"configured":true,
     "service_account":"relay@project.iam.gserviceaccount.com","pattern":"*@example.com",
     "sending_state":null,"resumes_at":null,"sent_24h":null,"authorized_at":null},
    {"address":"bob@example.com","kind":"service_account","token_state":"needs_reauth",
     "access_expires_in_seconds":null,"last_delivery":null,
     "last_error":"account bob@example.com needs attention: delegation","configured":true,
     "service_account":"relay@project.iam.gserviceaccount.com","pattern":"*@example.com",
     "sending_state":null,"resumes_at":null,"sent_24h":null,"authorized_at":null},
    {"address":"noreply@example.org","kind":"service_account","token_state":"expired",
     "access_expires_in_seconds":null,"last_delivery":null,"last_error":null,"configured":true,
     "service_account":"relay@project.iam.gserviceaccount.com","pattern":null,
     "sending_state":null,"resumes_at":null,"sent_24h":null,"authorized_at":null}]})"));
}

TEST(accounts_json, app_only_accounts_come_from_the_daemons_memory) {
  auto app = configured("alerts@contoso.com");
  app.provider = config::provider_kind::microsoft;
  app.app_only = true;
  // A row left from before it became app_only is not its state.
  const std::vector<auth::account_record> rows = {
      row("alerts@contoso.com", auth::token_state::needs_reauth)};
  const auto stopped = json::parse(accounts_json(rows, {app}, {}, now))["accounts"];
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0]["kind"], "app_only");
  EXPECT_EQ(stopped[0]["token_state"], "expired");

  auth::account_status live;
  live.address = "alerts@contoso.com";
  live.state = auth::token_state::valid;
  live.access_expires_in_seconds = 3000;
  const auto running = json::parse(accounts_json(rows, {app}, {live}, now))["accounts"];
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0]["kind"], "app_only");
  EXPECT_EQ(running[0]["token_state"], "valid");
  EXPECT_EQ(running[0]["access_expires_in_seconds"], 3000);
  EXPECT_EQ(running[0]["service_account"], nullptr);
}

}  // namespace
}  // namespace oauth_relay::daemon
