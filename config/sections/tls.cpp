// The `tls` section: the certificate and key the SMTP listener offers
// STARTTLS with (RFC 3207). Both files must be readable here; that they are
// PEM and belong together is checked where the TLS context is built
// (relay/smtp/server_tls.cpp), at start, --check-config and SIGHUP.
#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"tls"};

void read(reader& r, const mapping& top, settings& s) {
  const auto f = top.find("tls");
  if (!f || f->value.IsNull()) return;
  const mapping m(r, *f, {"cert_file", "key_file"});
  if (!m.ok()) return;
  tls_settings tls;
  bool ok = true;
  for (auto [key, out] : {std::pair{"cert_file", &tls.cert_file}, {"key_file", &tls.key_file}}) {
    const auto file = m.find(key);
    if (!file) {
      r.missing(*f, std::string("\"") + key + "\"");
      ok = false;
      continue;
    }
    const auto p = r.path(*file);
    if (!p || !r.readable(*file, *p)) {
      ok = false;
      continue;
    }
    *out = *p;
  }
  if (ok) s.tls = std::move(tls);
}

}  // namespace

extern const section tls_section{keys, read};

}  // namespace oauth_relay::config
