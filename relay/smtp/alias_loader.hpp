// The local addresses as the daemon and oauth-relayctl load them: the
// default local domains (this host's names), the aliases_file read from
// disk, and the table built from them (relay/smtp/local_addresses.hpp).
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "relay/smtp/local_addresses.hpp"

namespace oauth_relay::relay {

// localhost, `hostname`, this host's own name and its fully qualified name
// (looked up once per process: a reload does not wait for a resolver).
std::vector<std::string> default_local_domains(const std::string& hostname);

// `local_domains` (or the defaults), `aliases`, then the entries of
// `aliases_file`. Errors and warnings name the file and line; a file that
// cannot be read is an error.
local_addresses::build_result load_local_addresses(const config::settings& s);

}  // namespace oauth_relay::relay
