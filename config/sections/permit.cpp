// accounts[].permit: which local users, local groups and SMTP AUTH logins may
// send as an account. User and group names are resolved here, so a typo is a
// positioned error at load (and at every reload) rather than a refusal later.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view permit_keys[] = {"local_users", "local_groups", "logins"};
// getpwnam_r(3)/getgrnam_r(3) say ERANGE until the buffer holds the entry; a
// group with thousands of members needs far more than sysconf suggests.
constexpr std::size_t initial_lookup_buffer = 4096;
constexpr std::size_t max_lookup_buffer = 1 << 20;

enum class lookup { user, group };

// The uid or gid of `name` from the system's databases (NSS), or nothing.
std::optional<std::uint32_t> resolve(lookup kind, const std::string& name) {
  std::vector<char> buffer(initial_lookup_buffer);
  for (;;) {
    int rc = 0;
    std::optional<std::uint32_t> id;
    if (kind == lookup::user) {
      passwd entry{};
      passwd* found = nullptr;
      rc = ::getpwnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
      if (rc == 0 && found) id = found->pw_uid;
    } else {
      group entry{};
      group* found = nullptr;
      rc = ::getgrnam_r(name.c_str(), &entry, buffer.data(), buffer.size(), &found);
      if (rc == 0 && found) id = found->gr_gid;
    }
    if (rc != ERANGE || buffer.size() >= max_lookup_buffer) return id;
    buffer.resize(buffer.size() * 2);
  }
}

bool read_names(reader& r, const mapping& m, std::string_view key, lookup kind,
                std::vector<local_name>& out) {
  const auto f = m.find(key);
  if (!f) return true;
  const auto items = r.list(*f, kind == lookup::user ? "user name" : "group name");
  if (!items) return false;
  bool ok = true;
  for (const field& item : *items) {
    const auto name = r.non_empty_string(item);
    if (!name) {
      ok = false;
      continue;
    }
    const auto id = resolve(kind, *name);
    if (!id) {
      r.add(item, std::string("no local ") + (kind == lookup::user ? "user " : "group ") +
                      quote(*name) + " on this system");
      ok = false;
      continue;
    }
    out.push_back({*name, *id});
  }
  return ok;
}

bool read_logins(reader& r, const mapping& m, const settings& all, std::vector<std::string>& out) {
  const auto f = m.find("logins");
  if (!f) return true;
  const auto items = r.list(*f, "login name");
  if (!items) return false;
  bool ok = true;
  for (const field& item : *items) {
    if (auto name = r.checked(item,
                              "a login name (letters, digits, \".\", \"_\", \"-\", \"@\", "
                              "\"+\"; at most 64)",
                              is_login_name)) {
      out.push_back(std::move(*name));
    } else {
      ok = false;
    }
  }
  if (ok && !all.clients_logins_file) {
    r.add(*f, "needs clients.logins_file: without it no client can log in");
    ok = false;
  }
  return ok;
}

}  // namespace

// Called by the accounts section for each account (sections/accounts.cpp).
bool read_permit(reader& r, const mapping& account, const settings& all, account_settings& out) {
  const auto f = account.find("permit");
  if (!f) return true;
  const mapping m(r, *f, permit_keys);
  if (!m.ok()) return false;
  permit_settings permit;
  bool ok = read_names(r, m, "local_users", lookup::user, permit.local_users);
  ok = read_names(r, m, "local_groups", lookup::group, permit.local_groups) && ok;
  ok = read_logins(r, m, all, permit.logins) && ok;
  if (!ok) return false;
  if (permit.local_users.empty() && permit.local_groups.empty() && permit.logins.empty()) {
    // An empty permit would lock the account for everybody, which nobody
    // writes on purpose. (Keys it has but does not know are reported already.)
    if (f->value.size() == 0) {
      r.add(*f, "expected at least one of local_users, local_groups or logins");
    }
    return false;
  }
  out.permit = std::move(permit);
  return true;
}

}  // namespace oauth_relay::config
