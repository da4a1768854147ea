// The SMTP listener: accept loops on the configured (or systemd-passed)
// sockets, the client allow-list and connection limit, and the set of live
// sessions for a structured shutdown.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "relay/smtp/session.hpp"

namespace oauth_relay::relay {

class smtp_server {
 public:
  smtp_server(boost::asio::io_context& io, message_store& store,
              std::shared_ptr<const listener_config> config);

  // Binds the configured addresses; throws std::system_error naming the address.
  void listen(const std::vector<config::listen_address>& addresses);
  // Takes a listening socket handed over by systemd (LISTEN_FDS).
  void adopt(int fd);
  void start();
  // New sessions use `config`; sessions already running keep theirs.
  void reconfigure(std::shared_ptr<const listener_config> config);
  // Stops accepting, ends idle sessions now and the others within `grace`,
  // then calls `done`.
  void stop(std::chrono::milliseconds grace, std::function<void()> done);

  std::size_t active_sessions() const { return sessions_.size(); }
  std::vector<std::string> local_endpoints() const;

 private:
  boost::asio::awaitable<void> accept_loop(boost::asio::ip::tcp::acceptor& acceptor);
  void session_ended(std::list<std::shared_ptr<smtp_session>>::iterator it);

  boost::asio::io_context& io_;
  message_store& store_;
  std::shared_ptr<const listener_config> config_;
  std::list<boost::asio::ip::tcp::acceptor> acceptors_;
  std::list<std::shared_ptr<smtp_session>> sessions_;
  std::uint64_t next_session_ = 1;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  boost::asio::steady_timer grace_timer_;
};

}  // namespace oauth_relay::relay
