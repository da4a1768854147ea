// The SMTP listener: accept loops on the configured (or systemd-passed)
// sockets, TCP and Unix, the client allow-list and connection limit, each
// client's local identity, and the set of live sessions for a structured
// shutdown.
#pragma once

#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "common/socket_file.hpp"
#include "relay/smtp/password_checker.hpp"
#include "relay/smtp/peer_identity.hpp"
#include "relay/smtp/session.hpp"

namespace oauth_relay::relay {

class smtp_server {
 public:
  // `blocking` is the daemon's pool for password checks and group lookups.
  smtp_server(boost::asio::io_context& io, message_store& store,
              std::shared_ptr<const listener_config> config, boost::asio::any_io_executor blocking);

  // Binds the configured addresses (TCP, and Unix sockets with mode 0666);
  // throws std::system_error naming the address.
  void listen(const std::vector<config::listen_address>& addresses);
  // Takes a listening socket handed over by systemd (LISTEN_FDS), TCP or Unix.
  void adopt(int fd);
  void start();
  // New sessions use `config`; sessions already running keep theirs.
  void reconfigure(std::shared_ptr<const listener_config> config);
  const std::shared_ptr<const listener_config>& config() const { return config_; }
  // Stops accepting, ends idle sessions now and the others within `grace`,
  // then calls `done`. Removes the Unix sockets' files.
  void stop(std::chrono::milliseconds grace, std::function<void()> done);

  std::size_t active_sessions() const { return sessions_.size(); }
  // "127.0.0.1:25", "[::1]:25", "unix:/run/oauth-relay/smtp.sock".
  std::vector<std::string> local_endpoints() const;
  // The TCP ones as listen addresses (for the exposure warning).
  std::vector<config::listen_address> bound_addresses() const;

 private:
  using acceptor_type = generic_acceptor;
  struct listener {
    explicit listener(boost::asio::io_context& io) : acceptor(io) {}
    acceptor_type acceptor;
    socket_file file;  // Unix sockets the daemon bound itself
    bool is_unix = false;
  };

  boost::asio::awaitable<void> accept_loop(listener& l);
  void session_ended(std::list<std::shared_ptr<smtp_session>>::iterator it);

  boost::asio::io_context& io_;
  message_store& store_;
  std::shared_ptr<const listener_config> config_;
  boost::asio::any_io_executor blocking_;
  std::list<listener> listeners_;
  std::list<std::shared_ptr<smtp_session>> sessions_;
  peer_identifier peers_;
  password_checker passwords_;
  std::uint64_t next_session_ = 1;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  boost::asio::steady_timer grace_timer_;
};

}  // namespace oauth_relay::relay
