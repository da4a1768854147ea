// The `clients` section: which networks may connect to the SMTP listener
// (anything else gets 554 5.7.1 at connect).
#include <vector>

#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"clients"};

void read(reader& r, const mapping& top, settings& s) {
  s.clients_allow = {*parse_network("127.0.0.0/8"), *parse_network("::1/128")};
  const auto f = top.find("clients");
  if (!f) return;
  const mapping m(r, *f, {"allow"});
  const auto allow = m.find("allow");
  if (!m.ok() || !allow) return;
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

}  // namespace

extern const section clients_section{keys, read};

}  // namespace oauth_relay::config
