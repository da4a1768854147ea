// Who is at the other end of an SMTP session, as far as the kernel can tell
// without a password, and what `permit` makes of it. Values only: the lookups
// are in peer_identity.cpp, the session fills this in once when it starts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace oauth_relay::relay {

enum class transport {
  tcp,           // from another host (or a local one on a non-loopback address)
  tcp_loopback,  // from 127.0.0.0/8 or ::1: this machine
  unix_socket,   // the `unix:` listener
};

struct client_identity {
  transport via = transport::tcp;
  std::string ip;  // the TCP peer's address; empty on a Unix socket
  // The local process's user: SO_PEERCRED on a Unix socket, the owner of the
  // peer socket (NETLINK_SOCK_DIAG) on loopback TCP. Nothing for other hosts
  // or when the lookup failed.
  std::optional<std::uint32_t> uid;
  // That user's groups as the system's group database lists them (primary and
  // supplementary, getgrouplist(3)), plus the process's own gid on a Unix
  // socket; only filled in when some account's permit names groups.
  std::vector<std::uint32_t> groups;
  std::optional<std::int32_t> pid;  // SO_PEERCRED's, for the log

  // This machine: loopback TCP or the Unix socket (AUTH may be offered without TLS).
  bool local() const { return via != transport::tcp; }
};

// Whether a client with `identity`, authenticated as `login` (if it did),
// matches one entry of `permit`.
bool permitted(const config::permit_settings& permit, const client_identity& identity,
               const std::optional<std::string>& login);

// The comment after "Received: from HELO": "[192.0.2.1]", "[127.0.0.1] uid 33",
// "unix socket uid 33", with " authenticated as NAME" after a login.
std::string received_comment(const client_identity& identity,
                             const std::optional<std::string>& login);

}  // namespace oauth_relay::relay
