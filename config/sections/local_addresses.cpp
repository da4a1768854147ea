// The `local_domains`, `aliases` and `aliases_file` keys: the domains this
// host answers for itself and where mail for their names (root, postmaster)
// goes. Only their form is checked here; relay/smtp/local_addresses.hpp
// resolves the table (loops, targets nobody maps) when the daemon loads it.
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"local_domains", "aliases", "aliases_file"};
// RFC 5321 §4.5.3.1.1.
constexpr std::size_t max_local_name = 64;

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// RFC 5322 §3.2.3: a dot-atom of ASCII atext, as "root" or "first.last".
bool is_local_name(std::string_view name) {
  if (name.empty() || name.size() > max_local_name) return false;
  if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && std::strchr("!#$%&'*+-/=?^_`{|}~.", c) != nullptr);
  });
}

bool is_alias_target(std::string_view text) {
  return is_local_name(text) || is_email_address(text);
}

void read_domains(reader& r, const mapping& top, settings& s) {
  const auto f = top.find("local_domains");
  if (!f) return;
  const auto items = r.list(*f, "domain name");
  if (!items) return;
  std::vector<std::string> domains;
  std::size_t valid = 0;
  for (const field& item : *items) {
    if (auto d = r.checked(item, "a domain name", is_domain_name)) {
      ++valid;
      std::string name = lowercase(*d);
      if (std::find(domains.begin(), domains.end(), name) == domains.end()) {
        domains.push_back(std::move(name));
      }
    }
  }
  // One wrong entry keeps the defaults, as clients.allow does (the reader
  // refuses an empty list).
  if (!items->empty() && valid == items->size()) s.local.domains = std::move(domains);
}

// One alias's targets: an address, or a list of them.
std::optional<std::vector<std::string>> read_targets(reader& r, const field& f) {
  std::vector<field> items;
  if (f.value.IsScalar()) {
    items.push_back(f);
  } else if (auto list = r.list(f, "address")) {
    items = std::move(*list);
  } else {
    return std::nullopt;
  }
  if (items.empty()) return std::nullopt;  // reported by the reader
  std::vector<std::string> targets;
  bool ok = true;
  for (const field& item : items) {
    if (auto t = r.checked(item, "an email address or a local name", is_alias_target)) {
      targets.push_back(std::move(*t));
    } else {
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  return targets;
}

void read_aliases(reader& r, const mapping& top, settings& s) {
  const auto f = top.find("aliases");
  if (!f || f->value.IsNull()) return;
  if (!f->value.IsMap()) {
    r.add(*f, "expected a mapping of names to addresses, got " + describe(f->value));
    return;
  }
  std::vector<std::string> seen;
  for (const auto& entry : f->value) {
    const position at = position_of(entry.first);
    const std::string name = entry.first.IsScalar() ? entry.first.Scalar() : std::string();
    const field item{f->child_path(name), at, entry.second};
    if (name != "*" && !is_local_name(name) && !is_email_address(name)) {
      r.add(at, "aliases: " + quote(name) +
                    " is neither a local name (root), a full address nor \"*\"");
      continue;
    }
    const std::string key = lowercase(name);
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      r.add(at, "aliases: " + quote(name) + " is given twice");
      continue;
    }
    seen.push_back(key);
    if (auto targets = read_targets(r, item)) {
      s.local.aliases.push_back({name, std::move(*targets), r.file(), at.line});
    }
  }
}

void read(reader& r, const mapping& top, settings& s) {
  read_domains(r, top, s);
  read_aliases(r, top, s);
  // Only a path: the daemon reads the file at start, --check-config and
  // SIGHUP, as it does clients.logins_file.
  if (const auto file = top.find("aliases_file"); file && !file->value.IsNull()) {
    if (auto p = r.path(*file)) s.local.aliases_file = std::move(*p);
  }
}

}  // namespace

extern const section local_addresses_section{keys, read};

}  // namespace oauth_relay::config
