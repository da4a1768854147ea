// Loading the local addresses: the host's names and the aliases file are
// the only things read from the system; the rest is local_addresses::build.
#include "relay/smtp/alias_loader.hpp"

#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>

#include "config/validators.hpp"
#include "config/yaml_reader.hpp"

namespace oauth_relay::relay {
namespace {

std::string lowercase(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// What `hostname -f` says: the canonical name of this host's name.
std::string fully_qualified(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_flags = AI_CANONNAME;
  addrinfo* found = nullptr;
  if (::getaddrinfo(name.c_str(), nullptr, &hints, &found) != 0 || !found) return {};
  std::string canonical = found->ai_canonname ? found->ai_canonname : "";
  ::freeaddrinfo(found);
  return canonical;
}

void add_domain(std::vector<std::string>& domains, const std::string& name) {
  const std::string d = lowercase(name);
  if (d.empty() || !config::is_domain_name(d)) return;
  if (std::find(domains.begin(), domains.end(), d) == domains.end()) domains.push_back(d);
}

}  // namespace

std::vector<std::string> default_local_domains(const std::string& hostname) {
  static const std::string own = config::default_hostname();
  static const std::string fqdn = fully_qualified(own);
  std::vector<std::string> domains;
  add_domain(domains, "localhost");
  add_domain(domains, hostname);
  add_domain(domains, own);
  add_domain(domains, fqdn);
  return domains;
}

local_addresses::build_result load_local_addresses(const config::settings& s) {
  const auto& local = s.local;
  std::vector<std::string> domains =
      local.domains.empty() ? default_local_domains(s.hostname) : local.domains;
  std::vector<config::alias_entry> entries = local.aliases;
  std::vector<std::string> file_errors;
  std::vector<std::string> file_warnings;
  if (local.aliases_file) {
    const auto file = config::read_file(*local.aliases_file);
    if (file.error != 0) {
      file_errors.push_back(local.aliases_file->string() +
                            ": aliases_file cannot be read: " + ::strerror(file.error));
    } else {
      auto parsed = parse_aliases_file(file.text, local.aliases_file->string());
      file_errors = std::move(parsed.errors);
      file_warnings = std::move(parsed.warnings);
      entries.insert(entries.end(), parsed.entries.begin(), parsed.entries.end());
    }
  }
  auto built = local_addresses::build(std::move(domains), entries, s.limits.max_recipients);
  if (!file_errors.empty()) {
    built.errors.insert(built.errors.begin(), file_errors.begin(), file_errors.end());
    built.table.reset();
  }
  built.warnings.insert(built.warnings.begin(), file_warnings.begin(), file_warnings.end());
  // oauth-relay-sendmail qualifies bare names with `hostname` (it cannot
  // read this file as most users): that name must be local.
  const std::string hostname = lowercase(s.hostname);
  if (!local.domains.empty() && config::is_domain_name(hostname) &&
      std::find(local.domains.begin(), local.domains.end(), hostname) == local.domains.end()) {
    built.warnings.push_back(s.source.string() + ": local_domains does not include hostname \"" +
                             hostname + "\": `oauth-relay-sendmail root` would send root@" +
                             hostname + " on to Gmail");
  }
  return built;
}

}  // namespace oauth_relay::relay
