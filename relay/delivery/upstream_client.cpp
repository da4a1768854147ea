// The upstream SMTP dialogue as straight-line coroutines: connection, TLS,
// login and the wire (transactions: upstream_transaction.cpp). Every read and
// write has its own deadline; any timeout, lost connection or unparseable
// reply leaves the connection broken (closed), and the caller sees it as a value.
#include "relay/delivery/upstream_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <array>
#include <stdexcept>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/deadline.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "config/log.hpp"
#include "config/provider.hpp"
#include "relay/delivery/upstream_client_impl.hpp"

namespace oauth_relay::relay {

namespace asio = boost::asio;
using smtp::make_reply;

namespace {

// How much of a server's 334 challenge we decode and quote in a log line.
constexpr std::size_t max_challenge_quote = 512;

const char* tls_name(config::upstream_tls tls) {
  return tls == config::upstream_tls::implicit ? "implicit" : "starttls";
}

std::string duration_text(std::chrono::steady_clock::duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

// Only printable ASCII of a decoded challenge is quoted (it is JSON from Google).
std::string printable(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, max_challenge_quote)) {
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  return out;
}

}  // namespace

asio::ssl::context make_upstream_tls_context(std::optional<std::filesystem::path> ca_file) {
  asio::ssl::context ctx(asio::ssl::context::tls_client);
  // RFC 8996 deprecates TLS 1.0 and 1.1; Gmail speaks 1.3.
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
    throw std::runtime_error("cannot set the minimum TLS version to 1.2");
  }
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_compression);
  boost::system::error_code ec;
  ctx.set_default_verify_paths(ec);
  if (ec)
    throw std::runtime_error("cannot load the system's trusted certificates: " + ec.message());
  if (ca_file) {
    ctx.load_verify_file(ca_file->string(), ec);
    if (ec) {
      throw std::runtime_error("cannot load CA file " + ca_file->string() + ": " + ec.message());
    }
  }
  ctx.set_verify_mode(asio::ssl::verify_peer);
  return ctx;
}

upstream_options upstream_options::from(const config::upstream_settings& settings,
                                        std::string helo_name) {
  upstream_options o;
  o.host = settings.host;
  o.port = settings.port;
  o.tls = settings.tls;
  o.helo_name = std::move(helo_name);
  return o;
}

upstream_client::impl::impl(asio::any_io_executor executor,
                            std::shared_ptr<asio::ssl::context> owned, asio::ssl::context& tls,
                            upstream_options options)
    : options_(std::move(options)),
      tls_context_(std::move(owned)),
      resolver_(executor),
      stream_(executor, tls),
      // A passed deadline cancels whatever waits; fail_io() then asks
      // timed_out() to tell a timeout from other errors. It never
      // runs after the impl (and its deadline) is gone.
      deadline_(std::in_place, executor, [this] {
        boost::system::error_code ignored;
        resolver_.cancel();
        stream_.lowest_layer().cancel(ignored);
      }) {
  host_ = options_.host;
  if (host_.size() >= 2 && host_.front() == '[' && host_.back() == ']') {
    host_ = host_.substr(1, host_.size() - 2);
  }
  boost::system::error_code ec;
  asio::ip::make_address(host_, ec);
  host_is_ip_ = !ec;
}

// --- failure ---------------------------------------------------------------

void upstream_client::impl::fail(failure kind, std::string text) {
  if (state_ != state::broken) {
    failure_ = kind;
    failure_text_ = std::move(text);
  }
  state_ = state::broken;
  authenticated_ = false;
  deadline_.reset();
  boost::system::error_code ignored;
  stream_.lowest_layer().close(ignored);
}

void upstream_client::impl::fail_io(const boost::system::error_code& ec, std::string_view doing) {
  if (timed_out()) {
    fail(failure::timeout,
         "timed out after " + duration_text(options_.timeout) + " " + std::string(doing));
  } else if (ec == asio::error::eof || ec == asio::error::connection_reset ||
             ec == asio::ssl::error::stream_truncated) {
    fail(failure::closed, "connection closed by upstream " + std::string(doing));
  } else {
    fail(failure::network, ec.message() + " " + std::string(doing));
  }
}

// --- wire ------------------------------------------------------------------

asio::awaitable<bool> upstream_client::impl::write(std::string_view data, std::string_view what) {
  if (state_ == state::broken) co_return false;
  arm();
  boost::system::error_code ec;
  if (tls_) {
    auto [e, n] = co_await asio::async_write(stream_, asio::buffer(data),
                                             asio::as_tuple(asio::use_awaitable));
    ec = e;
  } else {
    auto [e, n] = co_await asio::async_write(stream_.next_layer(), asio::buffer(data),
                                             asio::as_tuple(asio::use_awaitable));
    ec = e;
  }
  disarm();
  if (ec) {
    fail_io(ec, "while sending " + std::string(what));
    co_return false;
  }
  co_return true;
}

asio::awaitable<std::optional<smtp::reply>> upstream_client::impl::read_reply(
    std::string_view what) {
  for (;;) {
    if (state_ == state::broken) co_return std::nullopt;
    if (head_ < in_.size()) {
      const auto step = parser_.feed(std::string_view(in_).substr(head_));
      head_ += step.consumed;
      if (head_ == in_.size()) {
        in_.clear();
        head_ = 0;
      }
      if (step.state == smtp::reply_parser::status::complete) co_return parser_.take();
      if (step.state == smtp::reply_parser::status::error) {
        fail(failure::protocol, "protocol error in the reply to " + std::string(what) + ": " +
                                    parser_.error().message);
        co_return std::nullopt;
      }
    }
    arm();
    boost::system::error_code ec;
    std::size_t n = 0;
    auto buffer = asio::buffer(read_buffer_);
    if (tls_) {
      auto [e, count] =
          co_await stream_.async_read_some(buffer, asio::as_tuple(asio::use_awaitable));
      ec = e;
      n = count;
    } else {
      auto [e, count] = co_await stream_.next_layer().async_read_some(
          buffer, asio::as_tuple(asio::use_awaitable));
      ec = e;
      n = count;
    }
    disarm();
    if (ec) {
      fail_io(ec, "while waiting for the reply to " + std::string(what));
      co_return std::nullopt;
    }
    in_.append(read_buffer_.data(), n);
  }
}

// --- connect ---------------------------------------------------------------

connect_result upstream_client::impl::connect_failed(connect_status status, std::string message,
                                                     std::optional<smtp::reply> reply) {
  fail(status == connect_status::network ? failure::network : failure::protocol, message);
  // Debug only: the scheduler logs an outage as one event with this reason
  // (upstream_unreachable), and oauth-relayctl test prints it.
  log::debug("upstream_connect_failed")
      .kv("conn", options_.id)
      .kv("host", options_.host)
      .kv("port", options_.port)
      .kv("error", message);
  return connect_result{status, std::move(message), std::move(reply)};
}

connect_result upstream_client::impl::connect_lost() {
  const auto status =
      failure_ == failure::protocol ? connect_status::protocol_error : connect_status::network;
  return connect_failed(status, failure_text_);
}

asio::awaitable<bool> upstream_client::impl::tcp_connect(std::string& error) {
  arm();
  const std::string service = std::to_string(options_.port);
  auto [ec, endpoints] =
      co_await resolver_.async_resolve(host_, service, asio::as_tuple(asio::use_awaitable));
  disarm();
  if (ec) {
    error = timed_out() ? "timed out resolving " + host_
                        : "cannot resolve " + host_ + ": " + ec.message();
    co_return false;
  }
  error = "no address for " + host_;
  for (const auto& entry : endpoints) {
    auto& socket = stream_.next_layer();
    boost::system::error_code ignored;
    socket.close(ignored);
    arm();
    auto [connect_ec] =
        co_await socket.async_connect(entry.endpoint(), asio::as_tuple(asio::use_awaitable));
    disarm();
    const std::string where =
        entry.endpoint().address().to_string() + " port " + std::to_string(options_.port);
    if (!connect_ec) {
      socket.set_option(asio::ip::tcp::no_delay(true), ignored);
      co_return true;
    }
    error = timed_out() ? "timed out connecting to " + where
                        : "cannot connect to " + where + ": " + connect_ec.message();
  }
  co_return false;
}

asio::awaitable<std::optional<std::string>> upstream_client::impl::tls_handshake() {
  SSL* ssl = stream_.native_handle();
  bool configured = true;
  if (host_is_ip_) {
    // RFC 6066 §3: literal IP addresses are not permitted in SNI.
    configured = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host_.c_str()) == 1;
  } else {
    configured =
        SSL_set_tlsext_host_name(ssl, host_.c_str()) == 1 && SSL_set1_host(ssl, host_.c_str()) == 1;
  }
  if (!configured) co_return "cannot set up certificate verification for " + host_;
  arm();
  auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::client,
                                               asio::as_tuple(asio::use_awaitable));
  disarm();
  if (!ec) {
    tls_ = true;
    co_return std::nullopt;
  }
  const long verify = SSL_get_verify_result(ssl);
  std::string why;
  if (timed_out()) {
    why = "timed out";
  } else if (verify != X509_V_OK) {
    why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
  } else {
    why = ec.message();
  }
  co_return "TLS handshake with " + host_ + " port " + std::to_string(options_.port) +
      " failed: " + why;
}

asio::awaitable<std::optional<smtp::reply>> upstream_client::impl::ehlo() {
  const std::string command = "EHLO " + options_.helo_name + "\r\n";
  const bool sent = co_await write(command, "EHLO");
  if (!sent) co_return std::nullopt;
  auto r = co_await read_reply("EHLO");
  co_return r;
}

asio::awaitable<connect_result> upstream_client::impl::connect() {
  if (state_ != state::fresh) {
    co_return connect_result{connect_status::network, "connect() called twice", std::nullopt};
  }
  std::string error;
  const bool connected = co_await tcp_connect(error);
  if (!connected) co_return connect_failed(connect_status::network, error);

  const bool implicit = options_.tls == config::upstream_tls::implicit;
  if (implicit) {
    const auto failed = co_await tls_handshake();
    if (failed) co_return connect_failed(connect_status::tls_failed, *failed);
  }
  auto greeting = co_await read_reply("the connection (greeting)");
  if (!greeting) co_return connect_lost();
  if (greeting->code != 220) {
    co_return connect_failed(connect_status::refused,
                             "upstream greeted with " + smtp::to_line(*greeting), greeting);
  }
  auto hello = co_await ehlo();
  if (!hello) co_return connect_lost();
  if (hello->code != 250) {
    co_return connect_failed(connect_status::refused,
                             "upstream refused EHLO: " + smtp::to_line(*hello), hello);
  }
  caps_ = smtp::parse_ehlo(*hello);

  if (!implicit) {
    if (!caps_.starttls) {
      co_return connect_failed(connect_status::no_starttls,
                               "upstream did not offer STARTTLS; no credentials were sent");
    }
    const bool sent = co_await write("STARTTLS\r\n", "STARTTLS");
    if (!sent) co_return connect_lost();
    auto ready = co_await read_reply("STARTTLS");
    if (!ready) co_return connect_lost();
    if (ready->code != 220) {
      co_return connect_failed(connect_status::refused,
                               "upstream refused STARTTLS: " + smtp::to_line(*ready), ready);
    }
    // RFC 3207 §4.2 / CVE-2011-0411: anything that arrived before the
    // handshake was not protected by it and must not be taken as a reply.
    if (head_ < in_.size()) {
      log::warning("upstream_plaintext_discarded")
          .kv("conn", options_.id)
          .kv("host", options_.host)
          .kv("bytes", in_.size() - head_);
    }
    in_.clear();
    head_ = 0;
    parser_.reset();
    const auto failed = co_await tls_handshake();
    if (failed) co_return connect_failed(connect_status::tls_failed, *failed);
    // RFC 3207 §4.2: forget what the server said before TLS and ask again.
    caps_ = smtp::ehlo_capabilities{};
    auto again = co_await ehlo();
    if (!again) co_return connect_lost();
    if (again->code != 250) {
      co_return connect_failed(connect_status::refused,
                               "upstream refused EHLO after STARTTLS: " + smtp::to_line(*again),
                               again);
    }
    caps_ = smtp::parse_ehlo(*again);
  }

  state_ = state::ready;
  SSL* ssl = stream_.native_handle();
  log::info("upstream_connected")
      .kv("conn", options_.id)
      .kv("host", options_.host)
      .kv("port", options_.port)
      .kv("tls", tls_name(options_.tls))
      .kv("protocol", SSL_get_version(ssl))
      .kv("cipher", SSL_get_cipher_name(ssl));
  co_return connect_result{connect_status::ok, {}, std::nullopt};
}

// --- authenticate ----------------------------------------------------------

auth_result upstream_client::impl::auth_failed(auth_status status, std::string message,
                                               std::optional<smtp::reply> reply,
                                               const std::string& user) {
  log::warning("upstream_auth_failed")
      .kv("conn", options_.id)
      .kv("user", user)
      .kv("error", message);
  return auth_result{status, std::move(message), std::move(reply)};
}

asio::awaitable<auth_result> upstream_client::impl::authenticate(const std::string& user,
                                                                 const std::string& access_token) {
  if (state_ != state::ready || !tls_) {
    // Never reached through connect(), which only succeeds over TLS; kept
    // so that no code path can put a token on a plain connection.
    co_return auth_failed(auth_status::connection_lost,
                          "refusing to authenticate: no verified TLS connection", std::nullopt,
                          user);
  }
  if (!caps_.offers_auth("XOAUTH2")) {
    co_return auth_failed(auth_status::permanent, "upstream does not offer AUTH XOAUTH2",
                          std::nullopt, user);
  }
  std::string response = smtp::xoauth2_initial_response(user, access_token);
  std::string command = "AUTH XOAUTH2 " + response + "\r\n";
  wipe(response);
  const bool written = co_await write(command, "AUTH");
  wipe(command);
  if (!written) co_return auth_failed(auth_status::connection_lost, failure_text_, {}, user);
  auto r = co_await read_reply("AUTH");
  if (!r) co_return auth_failed(auth_status::connection_lost, failure_text_, {}, user);

  std::string challenge;
  if (r->code == 334) {
    // Gmail's way of saying no (RFC 7628 §3.2.2 style): a JSON error in a
    // challenge; the client answers with an empty line to get the 535.
    const std::string& text = r->lines.empty() ? std::string() : r->lines.front();
    if (auto decoded = oauth_relay::base64_decode(text)) challenge = printable(*decoded);
    const bool answered = co_await write("\r\n", "the AUTH challenge response");
    if (!answered) co_return auth_failed(auth_status::connection_lost, failure_text_, {}, user);
    r = co_await read_reply("the AUTH challenge response");
    if (!r) co_return auth_failed(auth_status::connection_lost, failure_text_, {}, user);
  }
  std::string message = smtp::to_line(*r);
  if (!challenge.empty()) message += " (server said " + challenge + ")";
  if (r->code == 235) {
    authenticated_ = true;
    log::info("upstream_authenticated").kv("conn", options_.id).kv("user", user);
    co_return auth_result{auth_status::ok, std::move(message), std::move(r)};
  }
  if (r->code == 421) fail(failure::closed, "upstream closing: " + smtp::to_line(*r));
  auth_status status = auth_status::permanent;
  if (r->code == 535) {
    status = auth_status::token_rejected;
  } else if (r->transient()) {
    status = auth_status::temporary;
  } else if (r->code == 334 || !r->permanent()) {
    // A second challenge or a stray positive reply: we are out of step.
    fail(failure::protocol, "unexpected reply to AUTH: " + smtp::to_line(*r));
    status = auth_status::connection_lost;
  }
  co_return auth_failed(status, std::move(message), std::move(r), user);
}

// --- quit ------------------------------------------------------------------

asio::awaitable<void> upstream_client::impl::quit() {
  if (state_ == state::ready) {
    const bool sent = co_await write("QUIT\r\n", "QUIT");
    if (sent) co_await read_reply("QUIT");
  }
  // No TLS close_notify: SMTP's QUIT already ended the session, and waiting
  // for the peer's close_notify could only add a timeout.
  close("quit");
}

void upstream_client::impl::close(std::string reason) {
  deadline_.reset();
  if (state_ != state::broken) {
    failure_ = failure::none;
    failure_text_ = "connection closed (" + reason + ")";
  }
  state_ = state::broken;
  authenticated_ = false;
  boost::system::error_code ignored;
  resolver_.cancel();
  stream_.lowest_layer().close(ignored);
}

upstream_client::upstream_client(asio::any_io_executor executor, asio::ssl::context& tls,
                                 upstream_options options)
    : impl_(std::make_shared<impl>(std::move(executor), nullptr, tls, std::move(options))) {}

upstream_client::upstream_client(asio::any_io_executor executor,
                                 std::shared_ptr<asio::ssl::context> tls, upstream_options options)
    : impl_(std::make_shared<impl>(std::move(executor), tls, *tls, std::move(options))) {}

upstream_client::~upstream_client() {
  impl_->close("destroyed");
}

asio::awaitable<connect_result> upstream_client::connect() {
  auto self = impl_;  // alive until the coroutine ends
  auto result = co_await self->connect();
  co_return result;
}

asio::awaitable<auth_result> upstream_client::authenticate(std::string user,
                                                           std::string access_token) {
  auto self = impl_;
  auto result = co_await self->authenticate(user, access_token);
  wipe(access_token);
  co_return result;
}

asio::awaitable<send_result> upstream_client::send(const envelope& env, message_content& content) {
  auto self = impl_;
  auto result = co_await self->send(env, content);
  co_return result;
}

asio::awaitable<void> upstream_client::quit() {
  auto self = impl_;
  co_await self->quit();
}

void upstream_client::close() {
  impl_->close("closed by caller");
}

bool upstream_client::usable() const {
  return impl_->state_ == impl::state::ready;
}

bool upstream_client::authenticated() const {
  return impl_->state_ == impl::state::ready && impl_->authenticated_;
}

const smtp::ehlo_capabilities& upstream_client::capabilities() const {
  return impl_->caps_;
}

tls_upstream_connector::tls_upstream_connector(asio::any_io_executor executor,
                                               const config::settings& settings)
    : executor_(std::move(executor)),
      google_{std::make_shared<asio::ssl::context>(
                  make_upstream_tls_context(settings.upstream.ca_file)),
              upstream_options::from(settings.upstream, settings.hostname)} {
  if (!settings.microsoft) return;
  const auto& upstream = settings.microsoft->upstream;
  microsoft_ =
      endpoint{std::make_shared<asio::ssl::context>(make_upstream_tls_context(upstream.ca_file)),
               upstream_options::from(upstream, settings.hostname)};
  for (const auto& a : settings.accounts) {
    if (a.provider == config::provider_kind::microsoft) microsoft_accounts_.push_back(a);
  }
}

std::unique_ptr<upstream_connection> tls_upstream_connector::make(const endpoint& to,
                                                                  std::string id) {
  auto options = to.options;
  options.id = std::move(id);
  return std::make_unique<upstream_client>(executor_, to.tls, std::move(options));
}

std::unique_ptr<upstream_connection> tls_upstream_connector::make_connection(std::string id) {
  return make(google_, std::move(id));
}

std::unique_ptr<upstream_connection> tls_upstream_connector::make_connection_for(
    std::string id, const std::string& account) {
  const bool microsoft = microsoft_ && config::provider_kind_of(microsoft_accounts_, account) ==
                                           config::provider_kind::microsoft;
  return make(microsoft ? *microsoft_ : google_, std::move(id));
}

}  // namespace oauth_relay::relay
