// The kernel's word on who is connected: SO_PEERCRED on a Unix socket pair,
// and the owner of a real loopback TCP client socket, also one made by
// another uid (a child process that drops to nobody before it connects).
#include "relay/smtp/peer_identity.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace oauth_relay::relay {
namespace {

constexpr std::uint32_t nobody = 65534;

struct fd_guard {
  int fd = -1;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

// A listening socket on 127.0.0.1 (or ::1) with a free port.
int listener(int family, sockaddr_storage& bound) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage any{};
  socklen_t length = 0;
  if (family == AF_INET) {
    auto& in = reinterpret_cast<sockaddr_in&>(any);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof in;
  } else {
    auto& in6 = reinterpret_cast<sockaddr_in6&>(any);
    in6.sin6_family = AF_INET6;
    in6.sin6_addr = in6addr_loopback;
    length = sizeof in6;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&any), length) != 0 || ::listen(fd, 4) != 0) {
    ::close(fd);
    return -1;
  }
  socklen_t bound_length = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  return fd;
}

TEST(peer_identity, unix_socket_pair_gives_this_process) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  fd_guard a{pair[0]}, b{pair[1]};
  const auto cred = unix_peer_credentials(a.fd);
  ASSERT_TRUE(cred);
  EXPECT_EQ(cred->uid, ::geteuid());
  EXPECT_EQ(cred->gid, ::getegid());
  EXPECT_EQ(cred->pid, ::getpid());
  peer_identifier peers;
  const auto identity = peers.identify(a.fd);
  EXPECT_EQ(identity.via, transport::unix_socket);
  EXPECT_EQ(identity.uid, ::geteuid());
  EXPECT_EQ(identity.pid, ::getpid());
  EXPECT_EQ(identity.groups, std::vector<std::uint32_t>{::getegid()});
  EXPECT_EQ(identity.ip, "");
}

TEST(peer_identity, loopback_tcp_gives_the_owner_of_the_client_socket) {
  for (int family : {AF_INET, AF_INET6}) {
    SCOPED_TRACE(family == AF_INET ? "IPv4" : "IPv6");
    sockaddr_storage bound{};
    fd_guard server{listener(family, bound)};
    if (server.fd < 0 && family == AF_INET6) GTEST_SKIP() << "no IPv6 loopback here";
    ASSERT_GE(server.fd, 0);
    fd_guard client{::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ASSERT_EQ(::connect(client.fd, reinterpret_cast<sockaddr*>(&bound),
                        family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6)),
              0);
    fd_guard accepted{::accept(server.fd, nullptr, nullptr)};
    peer_identifier peers;
    const auto identity = peers.identify(accepted.fd);
    EXPECT_EQ(identity.via, transport::tcp_loopback);
    EXPECT_EQ(identity.ip, family == AF_INET ? "127.0.0.1" : "::1");
    EXPECT_EQ(identity.uid, ::geteuid());
    EXPECT_TRUE(identity.groups.empty());  // looked up later, and only when a permit needs them
  }
}

TEST(peer_identity, another_uid_is_told_apart) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to make a socket as another user";
  sockaddr_storage bound{};
  fd_guard server{listener(AF_INET, bound)};
  ASSERT_GE(server.fd, 0);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The socket is made after the uid changes: it belongs to nobody.
    if (::setgid(nobody) != 0 || ::setuid(nobody) != 0) ::_exit(2);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&bound), sizeof(sockaddr_in)) != 0) ::_exit(3);
    char c = 0;
    (void)::read(ready[0], &c, 1);  // hold the connection until the parent has looked
    ::_exit(0);
  }
  ::close(ready[0]);
  fd_guard accepted{::accept(server.fd, nullptr, nullptr)};
  peer_identifier peers;
  const auto identity = peers.identify(accepted.fd);
  (void)::write(ready[1], "x", 1);
  ::close(ready[1]);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(identity.uid, nobody);
}

TEST(peer_identity, no_socket_no_owner) {
  // A 4-tuple nobody has: the kernel says so, and there is no uid.
  sockaddr_storage client{}, server{};
  auto& c = reinterpret_cast<sockaddr_in&>(client);
  auto& s = reinterpret_cast<sockaddr_in&>(server);
  c.sin_family = s.sin_family = AF_INET;
  c.sin_addr.s_addr = s.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  c.sin_port = htons(1);
  s.sin_port = htons(2);
  peer_identifier peers;
  EXPECT_EQ(peers.tcp_owner(&client, &server), std::nullopt);
}

TEST(user_groups, lists_the_primary_group) {
  const auto groups = user_groups(0);
  ASSERT_FALSE(groups.empty());
  EXPECT_EQ(groups.front(), 0u);                  // root's primary group
  EXPECT_TRUE(user_groups(4000000000u).empty());  // no such user
}

}  // namespace
}  // namespace oauth_relay::relay
