// Accept loops and the session set. Everything runs on one event-loop thread,
// so the session list needs no lock.
#include "relay/smtp/server.hpp"

#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "config/log.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

// After EMFILE/ENFILE, wait instead of spinning on accept.
constexpr auto accept_backoff = std::chrono::milliseconds(100);

std::vector<std::uint8_t> address_bytes(const asio::ip::address& address) {
  if (address.is_v4()) {
    auto b = address.to_v4().to_bytes();
    return {b.begin(), b.end()};
  }
  auto v6 = address.to_v6();
  if (v6.is_v4_mapped()) {
    auto b = asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_bytes();
    return {b.begin(), b.end()};
  }
  auto b = v6.to_bytes();
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
void refuse(tcp::socket& socket, const smtp::reply& reply) {
  std::string text = reply.wire();
  boost::system::error_code ec;
  socket.non_blocking(true, ec);
  socket.write_some(asio::buffer(text), ec);
  socket.shutdown(tcp::socket::shutdown_both, ec);
  socket.close(ec);
}

}  // namespace

smtp_server::smtp_server(asio::io_context& io, message_store& store,
                         std::shared_ptr<const listener_config> config)
    : io_(io), store_(store), config_(std::move(config)), grace_timer_(io) {}

void smtp_server::listen(const std::vector<config::listen_address>& addresses) {
  for (const auto& a : addresses) {
    const std::string name = (a.host.find(':') != std::string::npos ? "[" + a.host + "]" : a.host) +
                             ":" + std::to_string(a.port);
    try {
      tcp::endpoint endpoint(asio::ip::make_address(a.host), a.port);
      auto& acceptor = acceptors_.emplace_back(io_);
      acceptor.open(endpoint.protocol());
      acceptor.set_option(tcp::acceptor::reuse_address(true));
      if (endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true));
      acceptor.bind(endpoint);
      acceptor.listen(asio::socket_base::max_listen_connections);
    } catch (const boost::system::system_error& e) {
      throw std::system_error(e.code(), "cannot listen on " + name);
    }
  }
}

void smtp_server::adopt(int fd) {
  auto& acceptor = acceptors_.emplace_back(io_);
  boost::system::error_code ec;
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  acceptor.assign(storage.ss_family == AF_INET6 ? tcp::v6() : tcp::v4(), fd, ec);
  if (ec) throw std::system_error(ec, "cannot use the socket passed by systemd");
}

std::vector<std::string> smtp_server::local_endpoints() const {
  std::vector<std::string> out;
  for (const auto& acceptor : acceptors_) {
    boost::system::error_code ec;
    auto endpoint = acceptor.local_endpoint(ec);
    if (ec) continue;
    const auto host = endpoint.address().to_string();
    out.push_back((endpoint.address().is_v6() ? "[" + host + "]" : host) + ":" +
                  std::to_string(endpoint.port()));
  }
  return out;
}

void smtp_server::start() {
  for (auto& acceptor : acceptors_) asio::co_spawn(io_, accept_loop(acceptor), asio::detached);
}

void smtp_server::reconfigure(std::shared_ptr<const listener_config> config) {
  config_ = std::move(config);
}

asio::awaitable<void> smtp_server::accept_loop(tcp::acceptor& acceptor) {
  for (;;) {
    auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (stopping_ || !acceptor.is_open()) co_return;
    if (ec) {
      log::warning("accept_failed").kv("error", ec.message());
      asio::steady_timer pause(io_, accept_backoff);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
      continue;
    }
    const auto& settings = config_->settings;
    boost::system::error_code peer_ec;
    const auto peer = socket.remote_endpoint(peer_ec);
    if (peer_ec) continue;  // already gone
    if (!allowed(settings, peer.address())) {
      log::notice("client_refused").kv("client", peer.address().to_string());
      refuse(socket, smtp::make_reply(554, "5.7.1",
                                      settings.hostname + " Client host is not allowed to relay"));
      continue;
    }
    if (sessions_.size() >= settings.limits.max_connections) {
      log::warning("too_many_connections")
          .kv("client", peer.address().to_string())
          .kv("limit", settings.limits.max_connections);
      refuse(socket, smtp::make_reply(421, "4.7.0",
                                      settings.hostname + " Too many connections, try later"));
      continue;
    }
    socket.set_option(tcp::no_delay(true), peer_ec);
    auto session = std::make_shared<smtp_session>(std::move(socket), config_, store_,
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
  for (auto& acceptor : acceptors_) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
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
