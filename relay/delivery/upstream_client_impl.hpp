// Inside upstream_client: one connection's state and its dialogue.
// upstream_client.cpp has the connection, login and wire; upstream_transaction.cpp
// the MAIL, RCPT and DATA of send(). Private to those two files.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

#include "common/deadline.hpp"
#include "relay/delivery/upstream_client.hpp"
#include "relay/delivery/upstream_reply.hpp"

namespace oauth_relay::relay {

struct upstream_client::impl {
  // Where the connection stands; `broken` is final.
  enum class state { fresh, ready, broken };
  // Why the last read or write failed.
  enum class failure { none, timeout, closed, network, protocol };

  impl(boost::asio::any_io_executor executor, std::shared_ptr<boost::asio::ssl::context> owned,
       boost::asio::ssl::context& tls, upstream_options options);

  upstream_options options_;
  std::string host_;  // without brackets
  bool host_is_ip_ = false;
  std::shared_ptr<boost::asio::ssl::context> tls_context_;  // set when the client keeps it alive
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::ssl::stream<boost::asio::ip::tcp::socket> stream_;
  // For the read, write, resolve, connect or handshake under way. Gone once
  // the connection is broken (which is final), so that no pending timer
  // keeps an io_context running after the connection's last operation.
  std::optional<deadline> deadline_;

  state state_ = state::fresh;
  bool tls_ = false;
  bool authenticated_ = false;
  failure failure_ = failure::none;
  std::string failure_text_;
  smtp::ehlo_capabilities caps_;

  std::string in_;
  std::size_t head_ = 0;  // in_[head_..] is unread
  std::array<char, 16 * 1024> read_buffer_{};
  smtp::reply_parser parser_;

  // --- deadlines -------------------------------------------------------------

  void arm() {
    if (deadline_) deadline_->arm(options_.timeout);
  }
  void disarm() {
    if (deadline_) deadline_->disarm();
  }
  // The operation that just failed ran out of time.
  bool timed_out() const { return deadline_ && deadline_->expired(); }

  // --- failure ---------------------------------------------------------------

  void fail(failure kind, std::string text);
  void fail_io(const boost::system::error_code& ec, std::string_view doing);

  // --- wire ------------------------------------------------------------------

  boost::asio::awaitable<bool> write(std::string_view data, std::string_view what);
  boost::asio::awaitable<std::optional<smtp::reply>> read_reply(std::string_view what);

  // --- connect ---------------------------------------------------------------

  connect_result connect_failed(connect_status status, std::string message,
                                std::optional<smtp::reply> reply = std::nullopt);
  // After a failed read or write: the failure as a connect result.
  connect_result connect_lost();
  boost::asio::awaitable<bool> tcp_connect(std::string& error);
  // SNI and the name (or address) the certificate must carry, then the handshake.
  boost::asio::awaitable<std::optional<std::string>> tls_handshake();
  boost::asio::awaitable<std::optional<smtp::reply>> ehlo();
  boost::asio::awaitable<connect_result> connect();

  // --- authenticate ----------------------------------------------------------

  auth_result auth_failed(auth_status status, std::string message, std::optional<smtp::reply> reply,
                          const std::string& user);
  boost::asio::awaitable<auth_result> authenticate(const std::string& user,
                                                   const std::string& access_token);

  // --- send (upstream_transaction.cpp) ---------------------------------------

  std::string mail_command(const envelope& env, std::uint64_t size, bool eight_bit) const;
  std::string rcpt_command(const recipient& r) const;
  // Writes the content dot-stuffed (RFC 5321 §4.5.2) and the end-of-data
  // line. A content that cannot be read to its end closes the connection
  // (SMTP cannot abort DATA otherwise) and is noted in `result`.
  boost::asio::awaitable<bool> write_content(message_content& content, send_result& result);
  // Deferral for every recipient not yet decided, when no reply will come.
  void defer_undecided(send_result& result, std::vector<bool>& decided);
  static void defer_undecided(send_result& result, std::vector<bool>& decided,
                              const std::string& why);
  // Decides every undecided recipient by one reply (MAIL's, DATA's, the content's).
  static void decide_undecided(send_result& result, std::vector<bool>& decided,
                               const smtp::reply& r);
  // A 421 anywhere means the server is closing the connection (RFC 5321 §3.8).
  void note_closing(const smtp::reply& r);
  // RSET after a transaction that did not end with the content.
  boost::asio::awaitable<void> reset_transaction();
  boost::asio::awaitable<send_result> send(const envelope& env, message_content& content);

  // --- quit ------------------------------------------------------------------

  boost::asio::awaitable<void> quit();
  void close(std::string reason);
};

}  // namespace oauth_relay::relay
