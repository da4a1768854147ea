// The SMTP client towards Gmail: one object per connection, Asio coroutines,
// verified TLS (STARTTLS or implicit) before any credential, SASL XOAUTH2, and
// transactions with per-recipient results. Implements relay/delivery/upstream.hpp.
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
#include "relay/delivery/upstream.hpp"
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

// One upstream SMTP connection. Not thread-safe: use it from one coroutine
// at a time on its executor. Objects passed by reference to a coroutine must
// outlive its completion.
class upstream_client final : public upstream_connection {
 public:
  // `tls` must outlive the client.
  upstream_client(boost::asio::any_io_executor executor, boost::asio::ssl::context& tls,
                  upstream_options options);
  // The client keeps `tls` alive as long as it needs it.
  upstream_client(boost::asio::any_io_executor executor,
                  std::shared_ptr<boost::asio::ssl::context> tls, upstream_options options);
  ~upstream_client() override;
  upstream_client(const upstream_client&) = delete;
  upstream_client& operator=(const upstream_client&) = delete;

  // TCP, greeting, EHLO, TLS (implicit, or STARTTLS which must be offered),
  // EHLO again over TLS. ok means the connection is encrypted and verified.
  boost::asio::awaitable<connect_result> connect() override;
  // AUTH XOAUTH2 over the verified TLS connection only.
  boost::asio::awaitable<auth_result> authenticate(std::string user,
                                                   std::string access_token) override;
  // One transaction. `content` has CRLF line endings; it is read from its
  // first octet in pieces of content_chunk, dot-stuffed, each piece written
  // with its own deadline. Needs a successful authenticate() first.
  boost::asio::awaitable<send_result> send(const envelope& env, message_content& content) override;
  // QUIT and close; the connection is not usable afterwards.
  boost::asio::awaitable<void> quit() override;
  // Closes at once, without QUIT.
  void close() override;

  // Connected, TLS up, in step with the server: another send() may follow.
  bool usable() const override;
  bool authenticated() const;
  // What the server advertised in its last EHLO (over TLS once connected).
  const smtp::ehlo_capabilities& capabilities() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;
};

// Makes upstream_clients to each provider's upstream (Google's upstream.host,
// Microsoft's providers.microsoft.upstream.host) with one TLS context each
// (built from its ca_file) and the relay's hostname as the EHLO name. A reload
// builds a new connector; clients already made keep the old context alive.
class tls_upstream_connector final : public upstream_connector {
 public:
  // Throws std::runtime_error naming the CA file when it cannot be loaded.
  tls_upstream_connector(boost::asio::any_io_executor executor, const config::settings& settings);

  // To Google's upstream.
  std::unique_ptr<upstream_connection> make_connection(std::string id) override;
  std::unique_ptr<upstream_connection> make_connection_for(std::string id,
                                                           const std::string& account) override;

 private:
  struct endpoint {
    std::shared_ptr<boost::asio::ssl::context> tls;
    upstream_options options;
  };
  std::unique_ptr<upstream_connection> make(const endpoint& to, std::string id);

  boost::asio::any_io_executor executor_;
  endpoint google_;
  std::optional<endpoint> microsoft_;  // with providers.microsoft
  std::vector<config::account_settings> microsoft_accounts_;
};

}  // namespace oauth_relay::relay
