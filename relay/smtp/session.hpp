// One inbound SMTP connection from a local application, run as a single
// coroutine: read a line, let smtp_protocol decide, reply; DATA goes through
// the decoder into a message draft and is answered after the store commits.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "common/deadline.hpp"
#include "config/config.hpp"
#include "relay/smtp/protocol.hpp"
#include "relay/smtp/sender_router.hpp"
#include "relay/spool/message_store.hpp"

namespace oauth_relay::relay {

// What a session needs of the configuration; replaced as a whole on reload,
// each session keeps the one it started with.
struct listener_config {
  explicit listener_config(config::settings s);
  config::settings settings;
  sender_router router;
};

class smtp_session : public std::enable_shared_from_this<smtp_session> {
 public:
  smtp_session(boost::asio::ip::tcp::socket socket, std::shared_ptr<const listener_config> config,
               message_store& store, std::string id);

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
  void say_last_words(const smtp::reply& reply);
  std::string received_header(const std::string& message_id) const;

  boost::asio::ip::tcp::socket socket_;
  std::shared_ptr<const listener_config> config_;
  message_store& store_;
  std::string id_;
  std::string client_ip_;
  smtp_protocol protocol_;

  std::vector<char> in_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  std::string out_;
  std::string decoded_;

  // One per command (command_timeout), one for the whole DATA phase.
  deadline deadline_;
  bool waiting_for_command_ = false;
  bool in_data_ = false;
  stop_reason stop_ = stop_reason::none;
};

}  // namespace oauth_relay::relay
