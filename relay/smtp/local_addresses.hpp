// The addresses this host answers for itself: its local domains and the
// alias table that sends mail for root or postmaster to a person. Built once
// per configuration (every alias resolved to real addresses, loops and
// targets nobody maps refused with the file and line); then the SMTP
// dialogue qualifies bare names and expands local recipients with plain
// lookups. Pure: the daemon reads the files (relay/smtp/alias_loader.hpp).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "config/config.hpp"

namespace oauth_relay::relay {

// sendmail's MaxAliasRecursion: an alias reaches real addresses through at
// most this many others.
inline constexpr std::size_t max_alias_depth = 10;

class local_addresses {
 public:
  struct build_result {
    std::shared_ptr<const local_addresses> table;  // set when errors is empty
    std::vector<std::string> errors;               // "FILE:LINE: ...", one line each
    std::vector<std::string> warnings;
  };
  // `domains`: at least one, lowercase, the first qualifies bare names (as
  // Postfix's myorigin). `aliases` in order of precedence: the first entry
  // for a name is the one used. An alias must not resolve to more than
  // `max_recipients` addresses: the message could never be taken.
  static build_result build(std::vector<std::string> domains,
                            const std::vector<config::alias_entry>& aliases,
                            std::size_t max_recipients);

  const std::vector<std::string>& domains() const { return domains_; }
  bool is_local_domain(std::string_view domain) const;
  // "root" becomes "root@" the first domain; an address is returned as it is.
  std::string qualify(std::string_view address) const;

  struct expansion {
    enum class kind {
      not_local,  // a real address: it goes out as it is
      expanded,   // a local address: `addresses` instead of it
      unknown,    // a local address no alias maps: refused (550 5.1.1)
    };
    kind what = kind::not_local;
    std::vector<std::string> addresses;
  };
  // For a qualified address: the full address's alias, else its local
  // name's, else "*" (local parts and domains compared without case).
  expansion expand(std::string_view address) const;

  // One row of the resolved table, in the order the aliases were given.
  struct resolved_alias {
    std::string name;  // as written: "root", "root@relay.example.com", "*"
    std::vector<std::string> addresses;
    std::string origin;  // "FILE:LINE"
  };
  const std::vector<resolved_alias>& resolved() const { return resolved_; }

 private:
  friend class alias_resolver;
  // The index into resolved_ for a qualified, lowercased address; -1: none.
  long find(std::string_view lowered) const;

  std::vector<std::string> domains_;
  std::vector<resolved_alias> resolved_;
  std::unordered_map<std::string, std::size_t> by_key_;  // lowercased name -> resolved_ index
  long catch_all_ = -1;
};

// An aliases(5) file, as newaliases reads it: "name: target, target",
// comments from "#", continuation lines starting with white space, quoted
// names. Targets a relay cannot deliver to (a command "|...", a file "/...",
// ":include:") are skipped with a warning; an alias left with no target is
// left out, so "*" (if any) takes its name. Entries are in file order; a name
// given again is skipped with a warning (the first counts).
struct aliases_file_result {
  std::vector<config::alias_entry> entries;
  std::vector<std::string> errors;  // "FILE:LINE: ..."
  std::vector<std::string> warnings;
};
aliases_file_result parse_aliases_file(std::string_view text, const std::string& file);

}  // namespace oauth_relay::relay
