// Who is at the other end of a connection to the SMTP listener, from the
// kernel: SO_PEERCRED on a Unix socket; for loopback TCP, the owner of the
// client's socket, found with one NETLINK_SOCK_DIAG request for the exact
// 4-tuple. TCP from another address has no local identity.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "relay/smtp/client_identity.hpp"

namespace oauth_relay::relay {

struct peer_credentials {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::int32_t pid = 0;
};

// SO_PEERCRED of a connected Unix stream socket: the process that connected,
// as it was when it called connect(2).
std::optional<peer_credentials> unix_peer_credentials(int fd);

// Identifies the clients of one listener. Holds a NETLINK_SOCK_DIAG socket
// for the loopback lookups; used on the event loop only. Each lookup is one
// request and one answer from the kernel, without waiting on anything else.
class peer_identifier {
 public:
  peer_identifier();
  ~peer_identifier();
  peer_identifier(const peer_identifier&) = delete;
  peer_identifier& operator=(const peer_identifier&) = delete;

  // The identity of the client on the connected socket `fd` (TCP or Unix),
  // without its groups (user_groups() is blocking; the session asks for them
  // when a permit needs them). A failed lookup gives no uid and a debug log line.
  client_identity identify(int fd);

  // The uid owning the local TCP socket with local address `client` and
  // remote address `server` (sockaddr_in or sockaddr_in6, both of one
  // family); nothing when there is none or the kernel does not say.
  std::optional<std::uint32_t> tcp_owner(const void* client, const void* server);

 private:
  int netlink_ = -1;
  std::uint32_t sequence_ = 0;
};

// The groups of `uid` as the system's databases list them: its primary group
// and every group naming it (getpwuid_r(3), getgrouplist(3)). Blocking (NSS
// may ask a directory server): call it on the blocking pool. Empty for a uid
// without a passwd entry.
std::vector<std::uint32_t> user_groups(std::uint32_t uid);

}  // namespace oauth_relay::relay
