// What the delivery scheduler needs of the upstream: connections that log in
// with XOAUTH2 and send transactions, and a connector that makes them. The
// TLS client (upstream_client.hpp) is the real one; unit tests put stand-ins
// behind these. Failures are typed values, each enum value documented.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "relay/envelope.hpp"
#include "relay/smtp/reply.hpp"
#include "relay/spool/content.hpp"

namespace oauth_relay::relay {

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
  std::string message;               // one line for logs and `oauth-relayctl test`
  std::optional<smtp::reply> reply;  // the refusal, when status is refused
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
  // The content could not be read to its end: the connection was closed
  // before the end of data, so nothing was delivered (every recipient not
  // refused at RCPT is deferred).
  std::optional<spool_failure> content_failure;

  std::size_t count(delivery_status status) const {
    std::size_t n = 0;
    for (const auto& r : recipients) n += r.status == status ? 1 : 0;
    return n;
  }
  bool all_delivered() const { return count(delivery_status::delivered) == recipients.size(); }
};

// One upstream SMTP connection, used from one coroutine at a time. Objects
// passed by reference to a coroutine must outlive its completion.
class upstream_connection {
 public:
  virtual ~upstream_connection() = default;

  // TCP, greeting, EHLO, TLS (implicit, or STARTTLS which must be offered),
  // EHLO again over TLS. ok means the connection is encrypted and verified.
  virtual boost::asio::awaitable<connect_result> connect() = 0;
  // AUTH XOAUTH2 over the verified TLS connection only.
  virtual boost::asio::awaitable<auth_result> authenticate(std::string user,
                                                           std::string access_token) = 0;
  // One transaction. `content` has CRLF line endings; it is read from its
  // first octet in pieces and dot-stuffed on the way out, and must not be
  // used elsewhere until this completes. Needs a successful authenticate() first.
  virtual boost::asio::awaitable<send_result> send(const envelope& env,
                                                   message_content& content) = 0;
  // QUIT and close; the connection is not usable afterwards.
  virtual boost::asio::awaitable<void> quit() = 0;
  // Closes at once, without QUIT; an operation in progress ends as a failure.
  virtual void close() = 0;
  // Connected, TLS up, in step with the server: another send() may follow.
  virtual bool usable() const = 0;
};

// Makes connections to the configured upstream. A new configuration (host,
// port, CA file) is a new connector; connections already open keep what they
// were made with.
class upstream_connector {
 public:
  virtual ~upstream_connector() = default;
  // A connection not yet connected; `id` names it in log lines.
  virtual std::unique_ptr<upstream_connection> make_connection(std::string id) = 0;
  // A connection to the upstream of `account`'s provider; a connector with
  // one upstream makes the same connection for every account.
  virtual std::unique_ptr<upstream_connection> make_connection_for(std::string id,
                                                                   const std::string& account) {
    (void)account;
    return make_connection(std::move(id));
  }
};

}  // namespace oauth_relay::relay
