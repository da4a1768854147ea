// The SMTP client towards Gmail: one object per connection, Asio coroutines,
// verified TLS (STARTTLS or implicit) before any credential, SASL XOAUTH2, and
// transactions with per-recipient results.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"
#include "relay/delivery/upstream_reply.hpp"
#include "relay/envelope.hpp"
#include "relay/smtp/reply.hpp"

namespace oauth_relay::relay {

// Deadline for each read and each write. RFC 5321 §4.5.3.2 suggests minutes
// for a server that may be a slow MTA; Gmail answers in well under a second,
// and a stuck connection holds one of an account's few upstream slots.
inline constexpr std::chrono::seconds default_upstream_timeout{60};

// The client TLS context shared by upstream connections: TLS 1.2 at least,
// peer verification against the system store plus `ca_file` when given.
// Throws std::runtime_error naming the file when it cannot be loaded.
boost::asio::ssl::context make_upstream_tls_context(std::optional<std::filesystem::path> ca_file);

struct upstream_options {
  std::string host = "smtp.gmail.com";  // DNS name or IP literal ("[::1]" or "::1")
  std::uint16_t port = 587;
  config::upstream_tls tls = config::upstream_tls::starttls;
  std::string helo_name = "localhost";  // the EHLO argument: the relay's hostname
  std::chrono::steady_clock::duration timeout = default_upstream_timeout;
  std::string id;  // names the connection in log lines

  static upstream_options from(const config::upstream_settings& settings, std::string helo_name);
};

enum class connect_status {
  ok,
  network,         // resolving, connecting, timeout or connection lost
  refused,         // greeting, EHLO or STARTTLS answered with 4xx/5xx
  no_starttls,     // the server did not offer STARTTLS; nothing secret was sent
  tls_failed,      // handshake or certificate verification failed
  protocol_error,  // the server's replies were not SMTP
};

struct connect_result {
  connect_status status = connect_status::network;
  std::string message;  // one line for logs and `oauth-relayctl test`
  bool ok() const { return status == connect_status::ok; }
};

enum class auth_status {
  ok,
  token_rejected,   // 535 (after the 334 dance): refresh the token once and retry
  temporary,        // 4xx: try later
  permanent,        // other 5xx, or XOAUTH2 not offered
  connection_lost,  // timeout, connection closed, protocol error; the connection is gone
};

struct auth_result {
  auth_status status = auth_status::connection_lost;
  // One line for logs: the reply and, after a 334, the decoded JSON status
  // Google sent (e.g. {"status":"400",...}). Never holds the token.
  std::string message;
  std::optional<smtp::reply> reply;  // the final reply, when one came
  bool ok() const { return status == auth_status::ok; }
};

enum class delivery_status {
  delivered,  // 250 after the content
  failed,     // 5xx at RCPT (or MAIL), or 5xx after DATA: bounce this recipient
  deferred,   // 4xx, timeout, connection lost before the final reply: try again later
};

struct recipient_result {
  std::string address;
  delivery_status status = delivery_status::deferred;
  // The reply that decided it: RCPT's when refused there, else the reply to
  // MAIL, DATA or the content. When no reply came (timeout, connection lost)
  // or the client decided alone, a reply made here, with from_upstream false.
  smtp::reply reply;
  bool from_upstream = false;
};

struct send_result {
  std::vector<recipient_result> recipients;  // in the envelope's order
  std::optional<smtp::reply> mail_reply;
  std::optional<smtp::reply> data_reply;  // the final reply after the content, or DATA's refusal
  std::string message;                    // one line for logs when something went wrong

  std::size_t count(delivery_status status) const;
  bool all_delivered() const { return count(delivery_status::delivered) == recipients.size(); }
};

// One upstream SMTP connection. Not thread-safe: use it from one coroutine
// at a time on its executor. Objects passed by reference to a coroutine must
// outlive its completion.
class upstream_client {
 public:
  upstream_client(boost::asio::any_io_executor executor, boost::asio::ssl::context& tls,
                  upstream_options options);
  ~upstream_client();
  upstream_client(const upstream_client&) = delete;
  upstream_client& operator=(const upstream_client&) = delete;

  // TCP, greeting, EHLO, TLS (implicit, or STARTTLS which must be offered),
  // EHLO again over TLS. ok means the connection is encrypted and verified.
  boost::asio::awaitable<connect_result> connect();
  // AUTH XOAUTH2 over the verified TLS connection only.
  boost::asio::awaitable<auth_result> authenticate(std::string user, std::string access_token);
  // One transaction. `content` has CRLF line endings; it is dot-stuffed on
  // the way out. Needs a successful authenticate() first.
  boost::asio::awaitable<send_result> send(const envelope& env, std::string_view content);
  // QUIT and close; the connection is not usable afterwards.
  boost::asio::awaitable<void> quit();
  // Closes at once, without QUIT.
  void close();

  // Connected, TLS up, in step with the server: another send() may follow.
  bool usable() const;
  bool authenticated() const;
  // What the server advertised in its last EHLO (over TLS once connected).
  const smtp::ehlo_capabilities& capabilities() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace oauth_relay::relay
