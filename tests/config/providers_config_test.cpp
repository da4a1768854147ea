// The `providers` section and accounts[].provider / app_only: Google stays
// the default, Microsoft's settings and defaults, and the errors --check-config gives.
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config/provider.hpp"

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::string oauth_keys = "oauth:\n  client_id: id\n  client_secret: s\n";

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& e : parse(yaml, "c.yaml").errors) out.push_back(e.to_string());
  return out;
}

class scratch {
 public:
  scratch() {
    std::string pattern = (fs::temp_directory_path() / "providers_config.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = pattern;
  }
  ~scratch() { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }

 private:
  fs::path dir_;
};

TEST(providers_config, google_is_the_default_and_takes_the_top_level_sections) {
  const auto r = parse(oauth_keys +
                           "upstream: {host: gmail.test, port: 465, tls: implicit}\n"
                           "accounts:\n  - address: a@example.com\n",
                       "c.yaml");
  ASSERT_THAT(r.errors, IsEmpty());
  EXPECT_EQ(r.value->accounts[0].provider, provider_kind::google);
  EXPECT_FALSE(r.value->microsoft);
  const provider p = provider_of(*r.value, "A@example.com");
  EXPECT_EQ(p.kind, provider_kind::google);
  EXPECT_EQ(p.oauth.token_url, "https://oauth2.googleapis.com/token");
  EXPECT_EQ(p.oauth.client_id, "id");
  EXPECT_EQ(p.refresh_scope, "");
  EXPECT_EQ(p.consent_scope, "https://mail.google.com/ openid email");
  EXPECT_EQ(p.upstream.host, "gmail.test");
  EXPECT_EQ(p.upstream.port, 465);
  EXPECT_EQ(r.value->accounts[0].limits, account_limits{});
}

TEST(providers_config, microsoft_defaults_and_endpoints) {
  const auto r = parse(oauth_keys +
                           "providers:\n  google: {}\n  microsoft:\n    client_id: ms-id\n"
                           "accounts:\n  - address: g@example.com\n"
                           "  - address: it@contoso.com\n    provider: microsoft\n",
                       "c.yaml");
  ASSERT_THAT(r.errors, IsEmpty());
  ASSERT_TRUE(r.value->microsoft);
  EXPECT_EQ(r.value->microsoft->tenant, "organizations");
  EXPECT_EQ(r.value->accounts[0].provider, provider_kind::google);
  EXPECT_EQ(r.value->accounts[1].provider, provider_kind::microsoft);
  // Exchange Online's 10,000 recipients a day and 30 messages a minute, as
  // the account's own limits; the Google account gets none.
  EXPECT_EQ(r.value->accounts[1].limits.recipients_per_day, 10'000u);
  EXPECT_EQ(r.value->accounts[1].limits.messages_per_minute, 30u);
  EXPECT_EQ(r.value->accounts[1].limits.messages_per_day, 0u);
  EXPECT_EQ(r.value->accounts[0].limits.messages_per_minute, 0u);
  const provider p = provider_of(*r.value, "IT@contoso.com");
  EXPECT_EQ(p.kind, provider_kind::microsoft);
  EXPECT_EQ(p.oauth.client_id, "ms-id");
  EXPECT_TRUE(p.oauth.client_secret.empty());
  EXPECT_EQ(p.oauth.token_url, "https://login.microsoftonline.com/organizations/oauth2/v2.0/token");
  EXPECT_EQ(p.oauth.auth_url,
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize");
  EXPECT_EQ(p.device_code_url,
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/devicecode");
  EXPECT_EQ(p.refresh_scope, "https://outlook.office.com/SMTP.Send offline_access");
  EXPECT_EQ(p.consent_scope,
            "https://outlook.office.com/SMTP.Send offline_access openid profile email");
  EXPECT_EQ(p.app_only_scope, "https://outlook.office365.com/.default");
  EXPECT_EQ(p.upstream.host, "smtp.office365.com");
  EXPECT_EQ(p.upstream.port, 587);
  EXPECT_EQ(p.upstream.tls, upstream_tls::starttls);
  EXPECT_EQ(provider_of(*r.value, "g@example.com").upstream.host, "smtp.gmail.com");
}

TEST(providers_config, microsoft_keys_as_written) {
  scratch dir;
  const auto secret = dir.write("secret", "ms-secret\n");
  const auto r = parse(oauth_keys +
                           "providers:\n  microsoft:\n    tenant: contoso.onmicrosoft.com\n"
                           "    client_id: ms-id\n    client_secret_file: " +
                           secret.string() +
                           "\n    authority: https://127.0.0.1:4443/\n"
                           "    upstream: {host: 127.0.0.1, port: 2587, tls: implicit}\n"
                           "accounts:\n  - address: alerts@contoso.com\n    provider: microsoft\n"
                           "    app_only: true\n    limits: {recipients_per_day: 50}\n",
                       "c.yaml");
  ASSERT_THAT(r.errors, IsEmpty());
  EXPECT_TRUE(r.value->accounts[0].app_only);
  EXPECT_EQ(r.value->accounts[0].limits.recipients_per_day, 50u);
  // A limit of its own does not take Exchange's other one away.
  EXPECT_EQ(r.value->accounts[0].limits.messages_per_minute, 30u);
  const provider p = provider_of(*r.value, "alerts@contoso.com");
  EXPECT_EQ(p.oauth.client_secret, "ms-secret");
  EXPECT_EQ(p.oauth.token_url, "https://127.0.0.1:4443/contoso.onmicrosoft.com/oauth2/v2.0/token");
  EXPECT_EQ(p.upstream.host, "127.0.0.1");
  EXPECT_EQ(p.upstream.port, 2587);
  EXPECT_EQ(p.upstream.tls, upstream_tls::implicit);
}

TEST(providers_config, only_microsoft_accounts_need_no_oauth_section) {
  const auto r = parse(
      "providers:\n  microsoft: {client_id: ms-id}\n"
      "accounts:\n  - address: it@contoso.com\n    provider: microsoft\n",
      "c.yaml");
  EXPECT_THAT(r.errors, IsEmpty());
  EXPECT_THAT(errors_of("providers:\n  microsoft: {client_id: ms-id}\n"
                        "accounts:\n  - address: g@example.com\n"),
              ElementsAre("c.yaml:1:1: missing required key \"oauth\" (the OAuth client of "
                          "g@example.com, an account authorized by consent)"));
}

TEST(providers_config, errors_name_file_line_and_key) {
  EXPECT_THAT(errors_of(oauth_keys + "accounts:\n  - address: it@contoso.com\n"
                                     "    provider: microsoft\n"),
              ElementsAre("c.yaml:6:15: accounts[0].provider: microsoft needs a "
                          "providers.microsoft section (its tenant and client_id at least)"));
  EXPECT_THAT(errors_of(oauth_keys + "accounts:\n  - address: it@contoso.com\n"
                                     "    provider: yahoo\n"),
              ElementsAre("c.yaml:6:15: accounts[0].provider: \"yahoo\" is not a provider; "
                          "expected google or microsoft"));
  EXPECT_THAT(
      errors_of(oauth_keys + "accounts:\n  - address: a@example.com\n    app_only: true\n"),
      ElementsAre("c.yaml:6:15: accounts[0].app_only: app_only is for provider: microsoft (a "
                  "Google Workspace account without consent uses service_account_file)"));
  EXPECT_THAT(errors_of(oauth_keys + "providers:\n  microsoft: {client_id: x}\n"
                                     "accounts:\n  - address: it@contoso.com\n"
                                     "    provider: microsoft\n    app_only: true\n"),
              ElementsAre("c.yaml:9:15: accounts[0].app_only: app_only needs "
                          "providers.microsoft.tenant to be the tenant's id or domain, not "
                          "\"organizations\" (the client credentials grant names one "
                          "organization)"));
  EXPECT_THAT(errors_of(oauth_keys + "providers:\n  microsoft: {client_id: x, tenant: common}\n"
                                     "accounts:\n  - address: it@contoso.com\n"
                                     "    provider: microsoft\n    app_only: true\n"),
              ElementsAre("c.yaml:9:15: accounts[0].app_only: app_only needs "
                          "providers.microsoft.tenant to be the tenant's id or domain, not "
                          "\"common\" (the client credentials grant names one organization)"));
  EXPECT_THAT(
      errors_of(oauth_keys + "providers:\n  microsoft: {client_id: x, tenant: contoso.com}\n"
                             "accounts:\n  - address: it@contoso.com\n"
                             "    provider: microsoft\n    app_only: true\n"),
      ElementsAre("c.yaml:9:15: accounts[0].app_only: app_only needs "
                  "providers.microsoft.client_secret_file (the client credentials grant "
                  "authenticates the application)"));
  EXPECT_THAT(errors_of(oauth_keys + "providers:\n  microsoft: {tenant: contoso.com}\n"
                                     "accounts:\n  - address: a@example.com\n"),
              ElementsAre("c.yaml:5:3: providers.microsoft: missing required key \"client_id\""));
  EXPECT_THAT(errors_of(oauth_keys + "providers:\n  microsoft: {client_id: x, tenant: a/b}\n"
                                     "accounts:\n  - address: a@example.com\n"),
              ElementsAre("c.yaml:5:37: providers.microsoft.tenant: expected a tenant id, a "
                          "domain, organizations, common or consumers, got \"a/b\""));
  EXPECT_THAT(errors_of(oauth_keys + "providers:\n  google: {client_id: x}\n"
                                     "accounts:\n  - address: a@example.com\n"),
              ElementsAre("c.yaml:5:11: providers.google: expected {} (Google's settings are the "
                          "top-level oauth and upstream sections)"));
  EXPECT_THAT(errors_of(oauth_keys + "providers:\n  microsfot: {}\n"
                                     "accounts:\n  - address: a@example.com\n"),
              ElementsAre("c.yaml:5:3: providers: unknown key \"microsfot\" (did you mean "
                          "\"microsoft\"?)"));
}

}  // namespace
}  // namespace oauth_relay::config
