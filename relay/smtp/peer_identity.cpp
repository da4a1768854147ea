// SO_PEERCRED, one inet_diag request per loopback TCP session, and the
// user's groups. The inet_diag request names the client's socket as the
// kernel sees it: its source is the client's address and port, its
// destination the relay's (inet_diag_find_one_icsk looks up exactly that).
#include "relay/smtp/peer_identity.hpp"

#include <arpa/inet.h>
#include <grp.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config/log.hpp"

namespace oauth_relay::relay {
namespace {

// An answer to one inet_diag request is one inet_diag_msg with its header.
constexpr std::size_t netlink_answer_size = 8192;
constexpr std::size_t initial_lookup_buffer = 4096;
constexpr std::size_t max_lookup_buffer = 1 << 20;
constexpr int max_groups = 65536;  // NGROUPS_MAX on Linux

bool is_loopback_v4(const in_addr& a) {
  return (ntohl(a.s_addr) >> 24) == 127;
}

// An IPv4 client on an IPv6 socket (a dual-stack listener from systemd).
bool v4_mapped(const in6_addr& a, in_addr& out) {
  if (!IN6_IS_ADDR_V4MAPPED(&a)) return false;
  std::memcpy(&out, a.s6_addr + 12, 4);
  return true;
}

std::string address_text(const sockaddr_storage& s) {
  char text[INET6_ADDRSTRLEN] = {};
  if (s.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(s).sin_addr, text, sizeof text);
  } else if (s.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(s).sin6_addr;
    in_addr v4{};
    if (v4_mapped(a, v4)) {
      ::inet_ntop(AF_INET, &v4, text, sizeof text);
    } else {
      ::inet_ntop(AF_INET6, &a, text, sizeof text);
    }
  }
  return text;
}

bool is_loopback(const sockaddr_storage& s) {
  if (s.ss_family == AF_INET) {
    return is_loopback_v4(reinterpret_cast<const sockaddr_in&>(s).sin_addr);
  }
  if (s.ss_family != AF_INET6) return false;
  const auto& a = reinterpret_cast<const sockaddr_in6&>(s).sin6_addr;
  in_addr v4{};
  if (v4_mapped(a, v4)) return is_loopback_v4(v4);
  return IN6_IS_ADDR_LOOPBACK(&a);
}

// The IPv4 form of a v4-mapped sockaddr_in6, so the lookup asks the AF_INET table.
sockaddr_storage unmapped(const sockaddr_storage& s) {
  if (s.ss_family != AF_INET6) return s;
  const auto& six = reinterpret_cast<const sockaddr_in6&>(s);
  in_addr v4{};
  if (!v4_mapped(six.sin6_addr, v4)) return s;
  sockaddr_storage out{};
  auto& four = reinterpret_cast<sockaddr_in&>(out);
  four.sin_family = AF_INET;
  four.sin_port = six.sin6_port;
  four.sin_addr = v4;
  return out;
}

}  // namespace

std::optional<peer_credentials> unix_peer_credentials(int fd) {
  ucred cred{};
  socklen_t length = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0 || length != sizeof cred) {
    return std::nullopt;
  }
  return peer_credentials{cred.uid, cred.gid, cred.pid};
}

peer_identifier::peer_identifier()
    : netlink_(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)) {
  if (netlink_ < 0) {
    // A sandbox without AF_NETLINK: loopback clients get no local identity
    // (Unix-socket clients still do), said once at start.
    log::warning("peer_lookup_unavailable")
        .kv("error", std::strerror(errno))
        .kv("effect",
            "loopback TCP clients have no local identity; permit local_users and "
            "local_groups match only clients of the unix listener");
  }
}

peer_identifier::~peer_identifier() {
  if (netlink_ >= 0) ::close(netlink_);
}

client_identity peer_identifier::identify(int fd) {
  client_identity identity;
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t local_length = sizeof local;
  socklen_t peer_length = sizeof peer;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_length) != 0) return identity;
  if (local.ss_family == AF_UNIX) {
    identity.via = transport::unix_socket;
    if (const auto cred = unix_peer_credentials(fd)) {
      identity.uid = cred->uid;
      identity.pid = cred->pid;
      identity.groups.push_back(cred->gid);
    } else {
      log::debug("peer_lookup_failed").kv("error", std::strerror(errno));
    }
    return identity;
  }
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_length) != 0) return identity;
  identity.ip = address_text(peer);
  if (!is_loopback(peer)) return identity;
  identity.via = transport::tcp_loopback;
  const auto client = unmapped(peer);
  const auto server = unmapped(local);
  identity.uid = tcp_owner(&client, &server);
  return identity;
}

std::optional<std::uint32_t> peer_identifier::tcp_owner(const void* client, const void* server) {
  if (netlink_ < 0) return std::nullopt;
  const auto& c = *static_cast<const sockaddr_storage*>(client);
  const auto& s = *static_cast<const sockaddr_storage*>(server);
  if (c.ss_family != s.ss_family || (c.ss_family != AF_INET && c.ss_family != AF_INET6)) {
    return std::nullopt;
  }
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;  // no NLM_F_DUMP: the one socket of this 4-tuple
  message.header.nlmsg_seq = ++sequence_;
  auto& r = message.request;
  r.sdiag_family = static_cast<std::uint8_t>(c.ss_family);
  r.sdiag_protocol = IPPROTO_TCP;
  r.idiag_states = ~0U;
  r.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (c.ss_family == AF_INET) {
    const auto& from = reinterpret_cast<const sockaddr_in&>(c);
    const auto& to = reinterpret_cast<const sockaddr_in&>(s);
    r.id.idiag_sport = from.sin_port;
    r.id.idiag_dport = to.sin_port;
    std::memcpy(r.id.idiag_src, &from.sin_addr, 4);
    std::memcpy(r.id.idiag_dst, &to.sin_addr, 4);
  } else {
    const auto& from = reinterpret_cast<const sockaddr_in6&>(c);
    const auto& to = reinterpret_cast<const sockaddr_in6&>(s);
    r.id.idiag_sport = from.sin6_port;
    r.id.idiag_dport = to.sin6_port;
    std::memcpy(r.id.idiag_src, &from.sin6_addr, 16);
    std::memcpy(r.id.idiag_dst, &to.sin6_addr, 16);
  }
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(netlink_, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) != static_cast<ssize_t>(sizeof message)) {
    log::debug("peer_lookup_failed").kv("error", std::strerror(errno));
    return std::nullopt;
  }
  // The kernel answers within sendto(); an answer to an older request (one
  // given up on) is skipped by its sequence number.
  alignas(nlmsghdr) char answer[netlink_answer_size];
  for (;;) {
    const ssize_t n = ::recv(netlink_, answer, sizeof answer, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      log::debug("peer_lookup_failed").kv("error", std::strerror(errno));
      return std::nullopt;
    }
    int left = static_cast<int>(n);
    for (auto* h = reinterpret_cast<nlmsghdr*>(answer); NLMSG_OK(h, left);
         h = NLMSG_NEXT(h, left)) {
      if (h->nlmsg_seq != sequence_) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
        log::debug("peer_lookup_failed").kv("error", std::strerror(-e->error));
        return std::nullopt;
      }
      if (h->nlmsg_type == SOCK_DIAG_BY_FAMILY &&
          h->nlmsg_len >= NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        return static_cast<const inet_diag_msg*>(NLMSG_DATA(h))->idiag_uid;
      }
    }
  }
}

std::vector<std::uint32_t> user_groups(std::uint32_t uid) {
  std::vector<char> buffer(initial_lookup_buffer);
  passwd entry{};
  passwd* found = nullptr;
  for (;;) {
    const int rc = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
    if (rc != ERANGE || buffer.size() >= max_lookup_buffer) break;
    buffer.resize(buffer.size() * 2);
  }
  if (!found) return {};
  std::vector<gid_t> groups(32);
  for (;;) {
    int count = static_cast<int>(groups.size());
    if (::getgrouplist(found->pw_name, found->pw_gid, groups.data(), &count) >= 0) {
      groups.resize(static_cast<std::size_t>(count));
      return {groups.begin(), groups.end()};
    }
    // -1 with a larger count: the list did not fit; anything else is a failure.
    if (count <= static_cast<int>(groups.size()) || count > max_groups) return {found->pw_gid};
    groups.resize(static_cast<std::size_t>(count));
  }
}

}  // namespace oauth_relay::relay
