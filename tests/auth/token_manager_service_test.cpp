// The token manager with Google Workspace service accounts, on a stand-in
// endpoint without threads: one token per mailbox by the JWT bearer grant,
// mailboxes of a domain pattern made on first use, kept in memory only, and
// a refused delegation held with its hint until a reload or retry_max.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "auth/token_manager.hpp"
#include "common/text.hpp"
#include "fakes/test_service_account.hpp"
#include "oauth_test_support.hpp"
#include "scripted_http_client.hpp"

namespace oauth_relay::auth {
namespace {

using std::chrono::milliseconds;
using testing::ElementsAre;
using testing::HasSubstr;
using testing_support::ask;
using testing_support::run_until;
using testing_support::scripted_http_client;
using testing_support::test_cipher;

constexpr const char* sa_token_uri = "https://oauth2.stand-in.example/sa-token";

const fakes::test_service_account& test_account() {
  static const auto account = fakes::test_service_account::generate();
  return account;
}

std::shared_ptr<const config::service_account_key> key(
    std::string private_key_id = "0123456789abcdef") {
  auto k = std::make_shared<config::service_account_key>();
  k->file = "/etc/oauth-relay/sa.json";
  k->client_email = test_account().client_email;
  k->client_id = test_account().client_id;
  k->private_key_id = std::move(private_key_id);
  k->token_uri = sa_token_uri;
  k->private_key = test_account().private_key_pem;
  return k;
}

config::settings settings_in(const std::filesystem::path& dir) {
  config::settings s;
  s.state_dir = dir / "state";
  s.oauth.client_id = "stand-in.apps.googleusercontent.com";
  s.oauth.client_secret = "GOCSPX-stand-in-secret";
  s.oauth.token_url = "https://oauth2.stand-in.example/token";
  config::account_settings consent;
  consent.address = "ops@example.org";
  consent.senders = {"ops@example.org"};
  config::account_settings pattern;
  pattern.address = "*@example.com";
  pattern.senders = {"*@example.com"};
  pattern.service_account = key();
  config::account_settings listed;
  listed.address = "noreply@example.net";
  listed.senders = {"noreply@example.net"};
  listed.service_account = key();
  s.accounts = {consent, pattern, listed};
  return s;
}

struct rig {
  testing_support::temp_dir dir;
  config::settings settings = settings_in(dir.path());
  token_store store{settings.state_dir, test_cipher()};
  std::shared_ptr<scripted_http_client> http = std::make_shared<scripted_http_client>();
  token_manager_options options;
  boost::asio::io_context io;
  std::unique_ptr<token_manager> tokens;

  token_manager& manager() {
    if (!tokens) {
      tokens = std::make_unique<token_manager>(io.get_executor(), io.get_executor(), settings,
                                               store, http, options);
    }
    return *tokens;
  }
  token_result get(const std::string& account) {
    std::optional<token_result> result;
    ask(io, manager(), account, [&](token_result r) { result = std::move(r); });
    EXPECT_TRUE(run_until(io, [&] { return result.has_value(); })) << "no answer";
    return result.value_or(token_result{});
  }
  std::optional<account_status> status_of(const std::string& account) {
    for (auto& s : manager().status()) {
      if (s.address == account) return s;
    }
    return std::nullopt;
  }
  // The claims of the n-th request's assertion.
  nlohmann::json claims(std::size_t n) const {
    const auto& assertion = http->requests().at(n).fields.at("assertion");
    const auto first = assertion.find('.');
    const auto second = assertion.find('.', first + 1);
    return nlohmann::json::parse(
        base64url_decode(assertion.substr(first + 1, second - first - 1)).value());
  }
};

TEST(token_manager_service, each_mailbox_of_a_pattern_gets_its_own_token_as_itself) {
  rig r;
  const auto alice = r.get("alice@example.com");
  ASSERT_TRUE(alice.ok) << alice.error;
  EXPECT_EQ(alice.access_token, "ya29.stand-in-1");
  const auto bob = r.get("Bob@Example.com");
  ASSERT_TRUE(bob.ok) << bob.error;
  EXPECT_EQ(bob.access_token, "ya29.stand-in-2");
  ASSERT_EQ(r.http->requests().size(), 2u);
  const auto& first = r.http->requests()[0];
  EXPECT_EQ(first.url, sa_token_uri);
  EXPECT_EQ(first.fields.at("grant_type"), "urn:ietf:params:oauth:grant-type:jwt-bearer");
  EXPECT_EQ(first.fields.count("client_secret"), 0u);
  EXPECT_EQ(r.claims(0)["sub"], "alice@example.com");
  EXPECT_EQ(r.claims(0)["iss"], test_account().client_email);
  EXPECT_EQ(r.claims(0)["aud"], sa_token_uri);
  EXPECT_EQ(r.claims(0)["scope"], "https://mail.google.com/");
  EXPECT_EQ(r.claims(1)["sub"], "Bob@Example.com");

  // Cached: served from memory, no request.
  EXPECT_EQ(r.get("alice@example.com").access_token, "ya29.stand-in-1");
  EXPECT_EQ(r.get("ALICE@example.com").access_token, "ya29.stand-in-1");
  EXPECT_EQ(r.http->requests().size(), 2u);

  const auto status = r.status_of("alice@example.com");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->state, token_state::valid);
  EXPECT_EQ(status->service_account, test_account().client_email);
  EXPECT_FALSE(r.status_of("*@example.com")) << "the pattern itself holds no token";
  // Memory only: the store holds the consent account alone.
  std::vector<std::string> rows;
  for (const auto& row : r.store.load_all()) rows.push_back(row.address);
  EXPECT_THAT(rows, ElementsAre("ops@example.org"));
  // Outside the domain: not an account at all.
  const auto stranger = r.get("eve@example.org");
  EXPECT_FALSE(stranger.ok);
  EXPECT_EQ(stranger.error, "account eve@example.org is not configured");
}

TEST(token_manager_service, a_listed_service_account_is_ready_without_any_consent) {
  rig r;
  const auto status = r.status_of("noreply@example.net");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->state, token_state::expired);  // no token yet, none needed from a person
  r.manager().start();
  ASSERT_TRUE(run_until(
      r.io, [&] { return r.status_of("noreply@example.net")->state == token_state::valid; }));
  EXPECT_EQ(r.claims(0)["sub"], "noreply@example.net");
  // The consent account without a refresh token still waits for authorize.
  EXPECT_EQ(r.status_of("ops@example.org")->state, token_state::missing);
}

TEST(token_manager_service, refused_delegation_is_held_with_its_hint_until_a_reload) {
  rig r;
  r.http->then_answer(scripted_http_client::refused(
      401, "unauthorized_client",
      "Client is unauthorized to retrieve access tokens using this method, or client not "
      "authorized for any of the scopes requested."));
  const auto refused = r.get("alice@example.com");
  EXPECT_FALSE(refused.ok);
  EXPECT_EQ(refused.state, token_state::needs_reauth);
  EXPECT_THAT(refused.error, HasSubstr("account alice@example.com needs attention: Google "
                                       "refused the service account"));
  EXPECT_THAT(refused.error, HasSubstr("Security > API controls > Domain-wide delegation"));
  EXPECT_THAT(refused.error, HasSubstr("client ID " + test_account().client_id));
  EXPECT_THAT(refused.error, HasSubstr("https://mail.google.com/"));
  EXPECT_EQ(r.status_of("alice@example.com")->last_error, refused.error);

  // Answered at once from then on: no hammering while a person is needed.
  EXPECT_EQ(r.get("alice@example.com").error, refused.error);
  EXPECT_EQ(r.http->requests().size(), 1u);
  // Other mailboxes of the domain are asked for on their own.
  EXPECT_TRUE(r.get("bob@example.com").ok);
  EXPECT_EQ(r.http->requests().size(), 2u);

  // Delegation granted meanwhile; oauth-relayctl test (or reload) asks again now.
  r.manager().start();
  bool reloaded = false;
  r.manager().reload([&](token_manager::changes) { reloaded = true; });
  ASSERT_TRUE(run_until(r.io, [&] {
    return reloaded && r.status_of("alice@example.com")->state == token_state::valid;
  }));
  std::size_t asked_for_alice = 0;
  for (std::size_t i = 0; i < r.http->requests().size(); ++i) {
    if (r.claims(i)["sub"] == "alice@example.com") ++asked_for_alice;
  }
  EXPECT_EQ(asked_for_alice, 2u);  // (start() also got the listed account its token)
  EXPECT_EQ(r.status_of("alice@example.com")->last_error, "");
}

TEST(token_manager_service, a_temporary_failure_backs_off_and_keeps_the_hint_out) {
  rig r;
  r.http->then_answer(scripted_http_client::unavailable());
  const auto t = r.get("alice@example.com");
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.state, token_state::refresh_failing);
  EXPECT_EQ(t.error, "account alice@example.com: token endpoint answered HTTP 503");
  EXPECT_EQ(r.get("alice@example.com").state, token_state::refresh_failing);
  EXPECT_EQ(r.http->requests().size(), 1u);  // backing off
}

TEST(token_manager_service, a_reload_follows_the_config) {
  rig r;
  ASSERT_TRUE(r.get("alice@example.com").ok);
  ASSERT_TRUE(r.get("noreply@example.net").ok);
  // A new key for the listed account: its token was the old key's.
  auto changed = r.settings;
  changed.accounts[2].service_account = key("fedcba9876543210");
  // The pattern goes: its mailboxes go with it.
  changed.accounts.erase(changed.accounts.begin() + 1);
  r.manager().reconfigure(changed);
  EXPECT_FALSE(r.status_of("alice@example.com"));
  EXPECT_EQ(r.get("alice@example.com").error, "account alice@example.com is not configured");
  EXPECT_EQ(r.status_of("noreply@example.net")->state, token_state::expired);
  const auto again = r.get("noreply@example.net");
  ASSERT_TRUE(again.ok);
  EXPECT_EQ(again.access_token, "ya29.stand-in-3");
  EXPECT_EQ(r.claims(2)["sub"], "noreply@example.net");
}

TEST(token_manager_service, a_pattern_mailbox_is_kept_fresh_only_while_it_is_asked_for) {
  rig r;
  r.options.idle_mailbox = milliseconds(500);
  // Four-second tokens: refreshed ahead after half their lifetime.
  r.http->otherwise([n = 0](const auto&, const auto&) mutable {
    return scripted_http_client::granted("ya29.short-" + std::to_string(++n), 4);
  });
  ASSERT_TRUE(r.get("alice@example.com").ok);
  r.manager().start();
  auto asked_for = [&](const std::string& mailbox) {
    std::size_t n = 0;
    for (std::size_t i = 0; i < r.http->requests().size(); ++i) {
      if (r.claims(i)["sub"] == mailbox) ++n;
    }
    return n;
  };
  // The listed account is refreshed ahead twice; alice, idle, not once.
  ASSERT_TRUE(run_until(
      r.io, [&] { return asked_for("noreply@example.net") >= 3; }, milliseconds(15'000)));
  EXPECT_EQ(asked_for("alice@example.com"), 1u);
  // Asked for again: a new token at once (the old one lapsed), then kept fresh.
  const auto again = r.get("alice@example.com");
  ASSERT_TRUE(again.ok) << again.error;
  EXPECT_EQ(asked_for("alice@example.com"), 2u);
}

TEST(token_manager_service, a_key_openssl_refuses_needs_attention_without_a_request) {
  rig r;
  auto broken = std::make_shared<config::service_account_key>(*key());
  broken->private_key =
      "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
  r.settings.accounts[2].service_account = broken;
  const auto t = r.get("noreply@example.net");
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.state, token_state::needs_reauth);
  EXPECT_EQ(t.error,
            "account noreply@example.net needs attention: /etc/oauth-relay/sa.json: its "
            "private_key is not a PEM private key OpenSSL can read; put the JSON key Google's "
            "Cloud console made for the service account in that file, then: systemctl reload "
            "oauth-relay");
  EXPECT_EQ(r.http->requests().size(), 0u);
}

}  // namespace
}  // namespace oauth_relay::auth
