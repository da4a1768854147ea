// The `state_dir`, `health_socket` and `control_socket` keys: where the
// daemon keeps its database and spool, and where monitoring (health) and
// administrators (control) reach it.
#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"state_dir", "health_socket", "control_socket"};

void read(reader& r, const mapping& top, settings& s) {
  r.read_into(top, "state_dir", s.state_dir, &reader::path);
  r.read_into(top, "health_socket", s.health_socket, &reader::path);
  // Beside the health socket unless placed elsewhere: a config that moves
  // health_socket (a second instance, a test) moves both.
  s.control_socket = s.health_socket.parent_path() / "control.sock";
  const auto control = top.find("control_socket");
  if (control) r.read_into(top, "control_socket", s.control_socket, &reader::path);
  if (s.control_socket == s.health_socket) {
    if (const auto at = control ? control : top.find("health_socket")) {
      r.add(*at,
            "health_socket and control_socket must differ (monitoring must not reach the "
            "control socket)");
    }
  }
}

}  // namespace

extern const section paths_section{keys, read};

}  // namespace oauth_relay::config
