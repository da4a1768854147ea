// One inbound SMTP connection from a local application, run as a single
// coroutine: read a line, let smtp_protocol decide, reply; DATA goes through
// the decoder (and, while in the header, the header completion) into a
// message draft and is answered after the store commits.
// The same loop serves TCP, Unix sockets and TLS after STARTTLS.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "common/deadline.hpp"
#include "config/config.hpp"
#include "relay/smtp/header_completion.hpp"
#include "relay/smtp/logins.hpp"
#include "relay/smtp/password_checker.hpp"
#include "relay/smtp/protocol.hpp"
#include "relay/smtp/sender_router.hpp"
#include "relay/spool/message_store.hpp"

namespace oauth_relay::relay {

// What a session needs of the configuration; replaced as a whole on reload,
// each session keeps the one it started with.
struct listener_config {
  // `tls` and `logins` are built from settings.tls and
  // settings.clients_logins_file by the daemon (they read files).
  // `local` (from local_domains, aliases and aliases_file: relay/smtp/alias_loader.hpp)
  // likewise; nothing: addresses are taken as they are.
  explicit listener_config(config::settings s,
                           std::shared_ptr<boost::asio::ssl::context> tls = nullptr,
                           std::shared_ptr<const login_table> logins = nullptr,
                           std::shared_ptr<const local_addresses> local = nullptr);
  config::settings settings;
  sender_router router;
  std::shared_ptr<boost::asio::ssl::context> tls;
  std::shared_ptr<const login_table> logins;
  std::shared_ptr<const local_addresses> local;
  // Some account's permit names local groups: sessions with a uid look up
  // that user's groups when they start.
  bool needs_groups = false;
};

// What sessions share beyond the config: where blocking work goes and the password checks.
struct session_services {
  boost::asio::any_io_executor blocking;
  password_checker& passwords;
};

class smtp_session : public std::enable_shared_from_this<smtp_session> {
 public:
  using socket_type = boost::asio::generic::stream_protocol::socket;

  smtp_session(socket_type socket, client_identity identity,
               std::shared_ptr<const listener_config> config, message_store& store,
               session_services services, std::string id);

  boost::asio::awaitable<void> run();
  // Ends the session at its next safe point: at once when it waits for a
  // command (421 4.3.2), after the message when it is in DATA. `force` ends
  // it wherever it is.
  void interrupt(bool force);
  const std::string& id() const { return id_; }

 private:
  enum class stop_reason { none, timeout, shutdown };

  boost::asio::awaitable<bool> read_more();
  boost::asio::awaitable<bool> flush();
  boost::asio::awaitable<bool> receive_data();
  boost::asio::awaitable<bool> start_tls();
  boost::asio::awaitable<bool> check_credentials();
  void say_last_words(const smtp::reply& reply);
  void close();
  std::string received_header(const std::string& message_id) const;
  // What the relay adds to the message if its header lacks it.
  smtp::submission_fields submission_fields(const std::string& message_id) const;
  // "127.0.0.1", "unix" (for client= in the log lines).
  std::string client_text() const;

  socket_type socket_;
  // After STARTTLS: every read and write goes through it.
  std::unique_ptr<boost::asio::ssl::stream<socket_type&>> tls_;
  std::shared_ptr<const listener_config> config_;
  message_store& store_;
  session_services services_;
  std::string id_;
  smtp_protocol protocol_;

  std::vector<char> in_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  std::string out_;
  std::string decoded_;
  std::string completed_;  // decoded_ with the missing header fields, while in the header

  // One per command (command_timeout), one for the whole DATA phase.
  deadline deadline_;
  bool waiting_for_command_ = false;
  bool in_data_ = false;
  stop_reason stop_ = stop_reason::none;
};

}  // namespace oauth_relay::relay
