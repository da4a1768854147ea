// The `providers` section: which identity platforms and mail services the
// accounts use. Google's settings stay the top-level oauth and upstream.
#include <string>
#include <utility>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "config/provider.hpp"
#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {

// sections/upstream.cpp and sections/oauth.cpp
void read_upstream_endpoint(reader& r, const mapping& m, upstream_settings& s);
// A client secret from a file (the file's text without a trailing newline;
// an empty file is an error naming it, never quoting anything read).
void read_secret_file(reader& r, const field& f, secret_string& secret,
                      std::optional<std::filesystem::path>& file);

namespace {

constexpr std::string_view keys[] = {"providers"};

// A tenant as Microsoft names one in its endpoints' paths: a GUID, a domain,
// or one of the multi-tenant names. Nothing that would change the path.
bool is_tenant(std::string_view text) {
  if (text.empty() || text.size() > max_domain_name_length) return false;
  for (char c : text) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

void read_microsoft(reader& r, const field& f, settings& all) {
  const mapping m(
      r, f, {"tenant", "client_id", "client_secret_file", "authority", "ca_file", "upstream"});
  if (!m.ok()) return;
  microsoft_settings ms;
  if (const auto tenant = m.find("tenant")) {
    if (auto text = r.checked(*tenant, "a tenant id, a domain, organizations, common or consumers",
                              is_tenant)) {
      ms.tenant = *text;
    }
  }
  if (const auto id = m.find("client_id")) {
    if (auto text = r.non_empty_string(*id)) ms.client_id = *text;
  } else {
    r.missing(f, "\"client_id\"");
  }
  if (const auto secret_file = m.find("client_secret_file");
      secret_file && !secret_file->value.IsNull()) {
    read_secret_file(r, *secret_file, ms.client_secret, ms.client_secret_file);
  }
  r.read_into(m, "authority", ms.authority, &reader::https_url);
  r.read_into(m, "ca_file", ms.ca_file, &reader::readable_path_or_null);
  if (const auto upstream = m.find("upstream")) {
    const mapping u(r, *upstream, {"host", "port", "tls", "ca_file"});
    if (u.ok()) read_upstream_endpoint(r, u, ms.upstream);
  }
  all.microsoft = std::move(ms);
}

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("providers");
  if (!f) return;
  const mapping m(r, *f, {"google", "microsoft"});
  if (!m.ok()) return;
  if (const auto google = m.find("google")) {
    // Google's settings are the top-level oauth and upstream sections.
    const bool empty =
        google->value.IsNull() || (google->value.IsMap() && google->value.size() == 0);
    if (!empty) {
      r.add(*google,
            "expected {} (Google's settings are the top-level oauth and upstream sections)");
    }
  }
  if (const auto microsoft = m.find("microsoft")) read_microsoft(r, *microsoft, all);
}

}  // namespace

extern const section providers_section{keys, read};

}  // namespace oauth_relay::config
