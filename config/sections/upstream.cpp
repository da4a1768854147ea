// The `upstream` section: the provider's SMTP submission server the relay
// delivers to, always over verified TLS.
#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {

// host, port, tls and ca_file: where a provider's submission server is
// (also providers.microsoft.upstream).
void read_upstream_endpoint(reader& r, const mapping& m, upstream_settings& s) {
  if (const auto host = m.find("host")) {
    if (auto name = r.parsed(*host, "a host name or IP address", parse_host)) s.host = *name;
  }
  r.read_into(m, "port", s.port, &reader::port);
  if (const auto tls = m.find("tls")) {
    if (auto text = r.scalar(*tls, "starttls or implicit")) {
      if (*text == "starttls") {
        s.tls = upstream_tls::starttls;
      } else if (*text == "implicit") {
        s.tls = upstream_tls::implicit;
      } else {
        r.add(*tls, quote(*text) +
                        " is not supported; expected starttls or implicit (nothing unencrypted "
                        "is supported)");
      }
    }
  }
  r.read_into(m, "ca_file", s.ca_file, &reader::readable_path_or_null);
}

namespace {

constexpr std::string_view keys[] = {"upstream"};

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("upstream");
  if (!f) return;
  const mapping m(r, *f,
                  {"host", "port", "tls", "ca_file", "max_connections",
                   "max_messages_per_connection", "outage_alert_after"});
  if (!m.ok()) return;
  upstream_settings& s = all.upstream;
  read_upstream_endpoint(r, m, s);
  r.read_into(m, "max_connections", s.max_connections, &reader::positive);
  r.read_into(m, "max_messages_per_connection", s.max_messages_per_connection, &reader::positive);
  r.read_into(m, "outage_alert_after", s.outage_alert_after, &reader::duration);
}

}  // namespace

extern const section upstream_section{keys, read};

}  // namespace oauth_relay::config
