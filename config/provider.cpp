// The providers' descriptions: Google's from the top-level oauth and
// upstream sections, Microsoft's from providers.microsoft and its defaults.
#include "config/provider.hpp"

#include <algorithm>
#include <cctype>

namespace oauth_relay::config {
namespace {

bool same_address(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

}  // namespace

std::string_view to_string(provider_kind kind) {
  return kind == provider_kind::microsoft ? "microsoft" : "google";
}

std::string microsoft_endpoint(const microsoft_settings& ms, std::string_view endpoint) {
  std::string base = ms.authority;
  while (base.ends_with('/')) base.pop_back();
  return base + "/" + ms.tenant + "/oauth2/v2.0/" + std::string(endpoint);
}

bool is_multi_tenant(std::string_view tenant) {
  return same_address(tenant, "organizations") || same_address(tenant, "common") ||
         same_address(tenant, "consumers");
}

provider provider_of(const settings& s, provider_kind kind) {
  provider p;
  p.kind = kind;
  if (kind == provider_kind::google) {
    p.oauth = s.oauth;
    p.consent_scope = std::string(google_consent_scope);
    p.upstream = s.upstream;
    p.oauth_key = "oauth";
    p.upstream_key = "upstream";
    return p;
  }
  const microsoft_settings ms = s.microsoft.value_or(microsoft_settings{});
  p.display_name = "Microsoft";
  p.oauth.client_id = ms.client_id;
  p.oauth.client_secret = ms.client_secret;
  p.oauth.client_secret_file = ms.client_secret_file;
  p.oauth.auth_url = microsoft_endpoint(ms, "authorize");
  p.oauth.token_url = microsoft_endpoint(ms, "token");
  p.oauth.ca_file = ms.ca_file;
  p.refresh_scope = std::string(microsoft_refresh_scope);
  p.consent_scope = std::string(microsoft_consent_scope);
  p.app_only_scope = std::string(microsoft_app_only_scope);
  p.device_code_url = microsoft_endpoint(ms, "devicecode");
  p.upstream = ms.upstream;
  // One pool size for both providers: upstream.max_connections and its
  // siblings are the relay's own pacing, not the provider's.
  p.upstream.max_connections = s.upstream.max_connections;
  p.upstream.max_messages_per_connection = s.upstream.max_messages_per_connection;
  p.upstream.outage_alert_after = s.upstream.outage_alert_after;
  p.oauth_key = "providers.microsoft";
  p.upstream_key = "providers.microsoft.upstream";
  return p;
}

provider_kind provider_kind_of(const std::vector<account_settings>& accounts,
                               std::string_view address) {
  for (const auto& a : accounts) {
    if (same_address(a.address, address)) return a.provider;
  }
  return provider_kind::google;
}

}  // namespace oauth_relay::config
