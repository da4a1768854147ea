// Finding a systemd credential: only the environment systemd sets, so the
// same code runs under systemd, in `systemd-run -p LoadCredential=` and in tests.
#include "config/credentials.hpp"

#include <cstdlib>
#include <string>
#include <system_error>

namespace oauth_relay::config {

std::optional<std::filesystem::path> systemd_credential(std::string_view name) {
  const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
  if (dir == nullptr || *dir == '\0') return std::nullopt;
  std::filesystem::path file = std::filesystem::path(dir) / std::string(name);
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return std::nullopt;
  return file;
}

}  // namespace oauth_relay::config
