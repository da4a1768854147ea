// Accept loops and the session set. Everything runs on one event-loop thread,
// so the session list needs no lock. TCP and Unix listeners share one generic
// acceptor type; the family decides the allow-list check and the identity.
#include "relay/smtp/server.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/log.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using generic = asio::generic::stream_protocol;
using asio::ip::tcp;

// After EMFILE/ENFILE, wait instead of spinning on accept.
constexpr auto accept_backoff = std::chrono::milliseconds(100);
// The `unix:` listener is for every local user (INTERFACE: 0666): who may
// send as which account is `permit`'s business, with SO_PEERCRED.
constexpr mode_t unix_listener_mode = 0666;
constexpr mode_t unix_listener_directory_mode = 0755;

// The client's IP address of a TCP endpoint (IPv4-mapped IPv6 as IPv4); nothing for Unix.
std::optional<asio::ip::address> ip_of(const generic::endpoint& e) {
  if (e.data()->sa_family == AF_INET) {
    sockaddr_in in{};
    std::memcpy(&in, e.data(), sizeof in);
    return asio::ip::address_v4(ntohl(in.sin_addr.s_addr));
  }
  if (e.data()->sa_family == AF_INET6) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, e.data(), sizeof in6);
    asio::ip::address_v6::bytes_type bytes;
    std::memcpy(bytes.data(), in6.sin6_addr.s6_addr, 16);
    const asio::ip::address_v6 v6(bytes, in6.sin6_scope_id);
    if (v6.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, v6);
    return v6;
  }
  return std::nullopt;
}

std::optional<tcp::endpoint> tcp_endpoint_of(const generic::endpoint& e) {
  const auto ip = ip_of(e);
  if (!ip) return std::nullopt;
  std::uint16_t port = 0;
  if (e.data()->sa_family == AF_INET) {
    port = ntohs(reinterpret_cast<const sockaddr_in*>(e.data())->sin_port);
  } else {
    port = ntohs(reinterpret_cast<const sockaddr_in6*>(e.data())->sin6_port);
  }
  return tcp::endpoint(*ip, port);
}

std::vector<std::uint8_t> address_bytes(const asio::ip::address& address) {
  if (address.is_v4()) {
    auto b = address.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  auto b = address.to_v6().to_bytes();
  return {b.begin(), b.end()};
}

bool allowed(const config::settings& settings, const asio::ip::address& address) {
  const auto bytes = address_bytes(address);
  for (const auto& network : settings.clients_allow) {
    if (network.contains(bytes)) return true;
  }
  return false;
}

// One reply to a connection that gets no session; never waits for the client.
void refuse(generic::socket& socket, const smtp::reply& reply) {
  std::string text = reply.wire();
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(text), ec);
  socket.shutdown(generic::socket::shutdown_both, ec);
  socket.close(ec);
}

// Every local user is meant to reach a `unix:` listener; a directory on the
// way that others cannot search (a RuntimeDirectoryMode=0750) defeats that silently.
void warn_if_unreachable(const std::filesystem::path& socket) {
  for (auto dir = socket.parent_path(); !dir.empty() && dir != dir.root_path();
       dir = dir.parent_path()) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & S_IXOTH) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
      log::warning("unix_listener_unreachable")
          .kv("socket", socket.string())
          .kv("directory", dir.string())
          .kv("mode", mode)
          .kv("effect", "only its owner and group can connect; other users need o+x on it");
      return;
    }
  }
}

}  // namespace

smtp_server::smtp_server(asio::io_context& io, message_store& store,
                         std::shared_ptr<const listener_config> config,
                         asio::any_io_executor blocking)
    : io_(io),
      store_(store),
      config_(std::move(config)),
      blocking_(blocking),
      passwords_(io.get_executor()),
      grace_timer_(io) {}

void smtp_server::listen(const std::vector<config::listen_address>& addresses) {
  for (const auto& a : addresses) {
    auto& l = listeners_.emplace_back(io_);
    if (a.is_unix()) {
      l.is_unix = true;
      l.file = socket_file(io_, l.acceptor, a.unix_path, unix_listener_mode,
                           unix_listener_directory_mode, "cannot listen on unix:");
      warn_if_unreachable(a.unix_path);
      continue;
    }
    try {
      const generic::endpoint endpoint(tcp::endpoint(asio::ip::make_address(a.host), a.port));
      l.acceptor.open(endpoint.protocol());
      l.acceptor.set_option(asio::socket_base::reuse_address(true));
      if (endpoint.data()->sa_family == AF_INET6) l.acceptor.set_option(asio::ip::v6_only(true));
      l.acceptor.bind(endpoint);
      l.acceptor.listen(asio::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
      throw std::system_error(e.code(), "cannot listen on " + a.to_string());
    }
  }
}

void smtp_server::adopt(int fd) {
  auto& l = listeners_.emplace_back(io_);
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  l.is_unix = storage.ss_family == AF_UNIX;
  // systemd created (and removes) a Unix socket's file; this one is not ours to unlink.
  const generic protocol(storage.ss_family, l.is_unix ? 0 : static_cast<int>(IPPROTO_TCP));
  boost::system::error_code ec;
  l.acceptor.assign(protocol, fd, ec);
  if (ec) throw std::system_error(ec, "cannot use the socket passed by systemd");
}

std::vector<std::string> smtp_server::local_endpoints() const {
  std::vector<std::string> out;
  for (const auto& a : bound_addresses()) out.push_back(a.to_string());
  return out;
}

std::vector<config::listen_address> smtp_server::bound_addresses() const {
  std::vector<config::listen_address> out;
  for (const auto& l : listeners_) {
    boost::system::error_code ec;
    const auto endpoint = l.acceptor.local_endpoint(ec);
    if (ec) continue;
    if (l.is_unix) {
      // sun_path, up to its final NUL.
      const auto* un = reinterpret_cast<const sockaddr_un*>(endpoint.data());
      const auto size =
          std::min(sizeof un->sun_path, endpoint.size() - offsetof(sockaddr_un, sun_path));
      out.push_back(config::listen_address::unix_socket(
          std::string(un->sun_path, ::strnlen(un->sun_path, size))));
    } else if (const auto e = tcp_endpoint_of(endpoint)) {
      out.emplace_back(e->address().to_string(), e->port());
    }
  }
  return out;
}

void smtp_server::start() {
  for (auto& l : listeners_) asio::co_spawn(io_, accept_loop(l), asio::detached);
}

void smtp_server::reconfigure(std::shared_ptr<const listener_config> config) {
  config_ = std::move(config);
}

asio::awaitable<void> smtp_server::accept_loop(listener& l) {
  for (;;) {
    auto [ec, socket] = co_await l.acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (stopping_ || !l.acceptor.is_open()) co_return;
    if (ec) {
      log::warning("accept_failed").kv("error", ec.message());
      asio::steady_timer pause(io_, accept_backoff);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    const auto& settings = config_->settings;
    std::string client = "unix";
    if (!l.is_unix) {
      boost::system::error_code peer_ec;
      const auto peer = socket.remote_endpoint(peer_ec);
      const auto ip = peer_ec ? std::nullopt : ip_of(peer);
      if (!ip) continue;  // already gone
      client = ip->to_string();
      if (!allowed(settings, *ip)) {
        log::notice("client_refused").kv("client", client);
        refuse(socket,
               smtp::make_reply(554, "5.7.1",
                                settings.hostname + " Client host is not allowed to relay"));
        continue;
      }
    }
    if (sessions_.size() >= settings.limits.max_connections) {
      log::warning("too_many_connections")
          .kv("client", client)
          .kv("limit", settings.limits.max_connections);
      refuse(socket, smtp::make_reply(421, "4.7.0",
                                      settings.hostname + " Too many connections, try later"));
      continue;
    }
    if (!l.is_unix) {
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
    }
    auto identity = peers_.identify(socket.native_handle());
    auto session = std::make_shared<smtp_session>(std::move(socket), std::move(identity), config_,
                                                  store_, session_services{blocking_, passwords_},
                                                  std::to_string(next_session_++));
    auto it = sessions_.insert(sessions_.end(), session);
    asio::co_spawn(io_, session->run(), [this, it](std::exception_ptr error) {
      if (error) {
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          log::error("session_failed").kv("session", (*it)->id()).kv("error", e.what());
        }
      }
      session_ended(it);
    });
  }
}

void smtp_server::session_ended(std::list<std::shared_ptr<smtp_session>>::iterator it) {
  sessions_.erase(it);
  if (stopping_ && sessions_.empty() && on_stopped_) {
    grace_timer_.cancel();
    auto done = std::move(on_stopped_);
    on_stopped_ = nullptr;
    done();
  }
}

void smtp_server::stop(std::chrono::milliseconds grace, std::function<void()> done) {
  stopping_ = true;
  for (auto& l : listeners_) {
    boost::system::error_code ignored;
    l.acceptor.close(ignored);
    l.file.remove();
  }
  if (sessions_.empty()) {
    done();
    return;
  }
  on_stopped_ = std::move(done);
  for (auto& session : sessions_) session->interrupt(false);
  grace_timer_.expires_after(grace);
  grace_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    for (auto& session : sessions_) session->interrupt(true);
  });
}

}  // namespace oauth_relay::relay
