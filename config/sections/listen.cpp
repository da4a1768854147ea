// The `listen` and `hostname` keys: where the daemon takes mail in (TCP
// addresses and Unix sockets) and the name it gives itself in its greeting and
// Received: headers.
#include <algorithm>
#include <vector>

#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"listen", "hostname"};

void read_listen(reader& r, const mapping& top, settings& s) {
  const auto f = top.find("listen");
  if (!f) return;
  const auto items = r.list(*f, "address");
  if (!items) return;
  std::vector<listen_address> result;
  bool ok = true;
  for (const field& item : *items) {
    auto text = r.scalar(item, "\"IP:PORT\", \"[IPv6]:PORT\" or \"unix:/PATH\"");
    if (!text) {
      ok = false;
      continue;
    }
    auto address = parse_listen(*text);
    if (!address && text->starts_with(unix_socket_prefix)) {
      r.add(item, "expected \"unix:\" and an absolute path of at most " +
                      std::to_string(max_unix_socket_path) + " bytes, got " + quote(*text));
      ok = false;
      continue;
    }
    if (!address) {
      r.add(item,
            "expected \"IP:PORT\" or \"[IPv6]:PORT\" with an IP address and a port 0-65535, or "
            "\"unix:/PATH\", got " +
                quote(*text));
      ok = false;
      continue;
    }
    // Port 0 entries each get their own free port, so they never collide.
    if ((address->port != 0 || address->is_unix()) &&
        std::find(result.begin(), result.end(), *address) != result.end()) {
      r.add(item, quote(*text) + " is listed twice");
      ok = false;
      continue;
    }
    result.push_back(*address);
  }
  if (ok) s.listen = std::move(result);
}

void read_hostname(reader& r, const mapping& top, settings& s) {
  if (const auto f = top.find("hostname")) {
    if (auto name = r.checked(*f, "a domain name", is_domain_name)) s.hostname = std::move(*name);
    return;
  }
  s.hostname = default_hostname();
  if (!is_domain_name(s.hostname)) {
    r.add(position(),
          "hostname: not set, and this host's name " + quote(s.hostname) + " is not a domain name");
  }
}

void read(reader& r, const mapping& top, settings& s) {
  read_listen(r, top, s);
  read_hostname(r, top, s);
}

}  // namespace

extern const section listen_section{keys, read};

}  // namespace oauth_relay::config
