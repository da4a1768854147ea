// The `clients` section: which networks may connect to the SMTP listener
// (anything else gets 554 5.7.1 at connect), the logins of SMTP AUTH and
// whether every client must use one.
#include <vector>

#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"clients"};

void read_allow(reader& r, const mapping& m, settings& s) {
  const auto allow = m.find("allow");
  if (!allow) return;
  const auto items = r.list(*allow, "network");
  if (!items) return;
  std::vector<network> result;
  for (const field& item : *items) {
    if (auto net = r.parsed(item, "a network like 127.0.0.0/8 or ::1/128", parse_network)) {
      result.push_back(std::move(*net));
    }
  }
  // One wrong entry keeps the default: a shorter list than written would
  // refuse clients the administrator meant to allow.
  if (result.size() == items->size()) s.clients_allow = std::move(result);
}

void read(reader& r, const mapping& top, settings& s) {
  s.clients_allow = {*parse_network("127.0.0.0/8"), *parse_network("::1/128")};
  const auto f = top.find("clients");
  if (!f) return;
  const mapping m(r, *f, {"allow", "logins_file", "require_login"});
  if (!m.ok()) return;
  read_allow(r, m, s);
  // Only a path here: the daemon reads and checks the file (its lines, its
  // mode) at start, --check-config and SIGHUP, and `oauth-relayctl login add`
  // must be able to create it when it does not exist yet.
  if (const auto logins = m.find("logins_file"); logins && !logins->value.IsNull()) {
    if (auto p = r.path(*logins)) s.clients_logins_file = std::move(*p);
  }
  r.read_into(m, "require_login", s.clients_require_login, &reader::boolean);
  if (s.clients_require_login && !s.clients_logins_file) {
    if (const auto require = m.find("require_login")) {
      r.add(*require, "true needs clients.logins_file: no client could ever log in");
    }
  }
}

}  // namespace

extern const section clients_section{keys, read};

}  // namespace oauth_relay::config
