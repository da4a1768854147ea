// The public face of the config loader: a file or text in, settings or every
// problem with its position out. The work is in schema.cpp and sections/.
#include "config/config.hpp"

#include <unistd.h>

#include <cstring>
#include <system_error>

#include "config/schema.hpp"
#include "config/yaml_reader.hpp"

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;

// Relative paths in the file are taken from here (see reader::path).
fs::path directory_of(const std::string& name) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(name.empty() ? fs::path(".") : fs::path(name), ec);
  if (ec) return fs::path(name).parent_path();
  return absolute.parent_path();
}

}  // namespace

std::string default_hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

std::string error::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

std::vector<std::string> exposure_warnings(const settings& s) {
  std::vector<std::string> out;
  if (s.tls || s.clients_require_login) return out;
  for (const auto& address : s.listen) {
    if (address.is_local()) continue;
    out.push_back("listen \"" + address.to_string() +
                  "\" is reachable from other hosts, with neither tls nor "
                  "clients.require_login: every client clients.allow lets in may send as each "
                  "account without a permit, and no login could be offered to it safely");
  }
  return out;
}

load_result load(const std::filesystem::path& path) {
  const file_contents contents = read_file(path);
  if (contents.error != 0) {
    load_result result;
    result.errors.push_back(
        error{path.string(), 0, 0, std::string("cannot read: ") + std::strerror(contents.error)});
    return result;
  }
  load_result result = parse(contents.text, path.string());
  // The daemon re-reads this on SIGHUP, possibly from another directory.
  std::error_code ec;
  if (result.value) result.value->source = fs::absolute(path, ec);
  return result;
}

load_result parse(const std::string& yaml_text, const std::string& name) {
  reader r(name, directory_of(name));
  return read_settings(r, yaml_text);
}

}  // namespace oauth_relay::config
