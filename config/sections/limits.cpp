// The `limits` section: what one SMTP session and message may use (size,
// recipients, connections, timeouts).
#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"limits"};

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("limits");
  if (!f) return;
  const mapping m(
      r, *f,
      {"max_message_size", "max_recipients", "max_connections", "command_timeout", "data_timeout"});
  if (!m.ok()) return;
  limits_settings& s = all.limits;
  if (const auto size = m.find("max_message_size")) {
    if (auto bytes = r.parsed(*size, "a size like 35M", parse_size)) s.max_message_size = *bytes;
  }
  r.read_into(m, "max_recipients", s.max_recipients, &reader::positive);
  r.read_into(m, "max_connections", s.max_connections, &reader::positive);
  r.read_into(m, "command_timeout", s.command_timeout, &reader::duration);
  r.read_into(m, "data_timeout", s.data_timeout, &reader::duration);
}

}  // namespace

extern const section limits_section{keys, read};

}  // namespace oauth_relay::config
