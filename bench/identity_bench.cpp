// identity-bench: what a client's identity costs the daemon, measured in
// process: one NETLINK_SOCK_DIAG lookup of a loopback peer (and, for
// comparison, SO_PEERCRED), one user's groups (NSS), and the CPU time of one
// password check (crypt_r, yescrypt at the default cost and SHA-512-crypt)
// as an AUTH pays it. Prints one key=value line; bench/identity drives it.
#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "relay/smtp/logins.hpp"
#include "relay/smtp/peer_identity.hpp"

namespace {

using namespace oauth_relay;

double thread_cpu_ms() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

template <typename F>
double wall_us_each(int rounds, F&& f) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < rounds; ++i) f();
  const auto elapsed = std::chrono::steady_clock::now() - start;
  return std::chrono::duration<double, std::micro>(elapsed).count() / rounds;
}

template <typename F>
double cpu_ms_each(int rounds, F&& f) {
  const double start = thread_cpu_ms();
  for (int i = 0; i < rounds; ++i) f();
  return (thread_cpu_ms() - start) / rounds;
}

}  // namespace

int main(int argc, char** argv) {
  int lookups = 100000;
  int checks = 20;
  CLI::App app{"identity-bench: the cost of peer lookups and password checks"};
  app.add_option("--lookups", lookups, "peer lookups to time")->capture_default_str();
  app.add_option("--checks", checks, "password checks to time")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  // A real loopback connection: the lookup finds the client's socket by its 4-tuple.
  const int server = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  ::bind(server, reinterpret_cast<sockaddr*>(&address), sizeof address);
  ::listen(server, 1);
  ::getsockname(server, reinterpret_cast<sockaddr*>(&address), &length);
  const int client = ::socket(AF_INET, SOCK_STREAM, 0);
  ::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address);
  const int accepted = ::accept(server, nullptr, nullptr);
  int pair[2];
  ::socketpair(AF_UNIX, SOCK_STREAM, 0, pair);

  relay::peer_identifier peers;
  bool found = true;
  const double netlink_us =
      wall_us_each(lookups, [&] { found = peers.identify(accepted).uid.has_value() && found; });
  const double peercred_us =
      wall_us_each(lookups, [&] { found = peers.identify(pair[0]).uid.has_value() && found; });
  const double groups_us = wall_us_each(1000, [&] { (void)relay::user_groups(0); });

  const auto yescrypt = *relay::hash_password(secret("benchmark password"));
  crypt_data data{};
  const std::string sha512 = ::crypt_r("benchmark password", "$6$saltsaltsaltsalt$", &data);
  const relay::login_table table({{"y", yescrypt}, {"s", sha512}});
  bool valid = true;
  const double yescrypt_ms = cpu_ms_each(
      checks, [&] { valid = table.verify("y", secret("benchmark password")) && valid; });
  const double sha512_ms = cpu_ms_each(
      checks, [&] { valid = table.verify("s", secret("benchmark password")) && valid; });
  const double unknown_ms =
      cpu_ms_each(checks, [&] { valid = !table.verify("nobody", secret("x")) && valid; });

  std::printf(
      "netlink_lookup_us=%.2f peercred_us=%.2f user_groups_us=%.1f yescrypt_cpu_ms=%.1f "
      "sha512crypt_cpu_ms=%.1f unknown_user_cpu_ms=%.1f yescrypt_setting=%s ok=%s\n",
      netlink_us, peercred_us, groups_us, yescrypt_ms, sha512_ms, unknown_ms,
      yescrypt.substr(0, yescrypt.find('$', 3) + 1).c_str(), found && valid ? "yes" : "no");
  ::close(client);
  ::close(accepted);
  ::close(server);
  return found && valid ? 0 : 1;
}
