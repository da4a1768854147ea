// The `state_dir` and `health_socket` keys: where the daemon keeps its
// database and spool, and where it answers health checks.
#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"state_dir", "health_socket"};

void read(reader& r, const mapping& top, settings& s) {
  r.read_into(top, "state_dir", s.state_dir, &reader::path);
  r.read_into(top, "health_socket", s.health_socket, &reader::path);
}

}  // namespace

extern const section paths_section{keys, read};

}  // namespace oauth_relay::config
