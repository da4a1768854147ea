// The identity providers' HTTPS plumbing, written once: Beast over asio::ssl,
// one coroutine per connection, an optional pause before each answer's write.
#include "fakes/https_fake_server.hpp"

#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace oauth_relay::fakes {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

}  // namespace

https_reply json_reply(http::status status, const nlohmann::json& body) {
  return {status, "application/json; charset=utf-8", body.dump(), {}};
}

https_reply redirect_reply(std::string content_type, std::string location) {
  return {http::status::found, std::move(content_type), {}, std::move(location)};
}

https_fake_server::https_fake_server(const test_pki& pki, https_fake_options options,
                                     handler handle)
    : options_(std::move(options)), handle_(std::move(handle)) {
  const auto cert = pki.issue({"localhost"}, {"127.0.0.1"});
  tls_.use_certificate_chain(asio::buffer(cert.certificate));
  tls_.use_private_key(asio::buffer(cert.private_key), asio::ssl::context::pem);
  if (options_.tls_options != 0) tls_.set_options(options_.tls_options);
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  asio::co_spawn(io_, accept_loop(), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

https_fake_server::~https_fake_server() {
  io_.stop();
  thread_.join();
}

asio::awaitable<void> https_fake_server::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> https_fake_server::serve(tcp::socket socket) {
  asio::ssl::stream<tcp::socket> stream(std::move(socket), tls_);
  auto [hs] = co_await stream.async_handshake(asio::ssl::stream_base::server,
                                              asio::as_tuple(asio::use_awaitable));
  if (hs) co_return;  // e.g. the client refused our certificate
  boost::beast::flat_buffer buffer;
  for (;;) {
    request req;
    auto [rec, n] =
        co_await http::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
    if (rec) co_return;
    std::optional<https_reply> r;
    if (options_.answer == https_fake_options::order::handle_then_wait) r = handle_(req);
    // Counted to the end of the answer's write, so a test can tell that a
    // request is under way (and kill the client then).
    ++in_flight_;
    struct done_guard {
      std::atomic<std::size_t>& n;
      ~done_guard() { --n; }
    } done{in_flight_};
    if (const auto pause = delay_.load(); pause.count() > 0) {
      asio::steady_timer timer(io_, pause);
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (!r) r = handle_(req);
    http::response<http::string_body> response(r->status, req.version());
    response.set(http::field::server, options_.server);
    response.set(http::field::content_type, r->content_type);
    for (const auto& [name, value] : options_.headers) response.set(name, value);
    if (!r->location.empty()) response.set(http::field::location, r->location);
    response.body() = std::move(r->body);
    response.keep_alive(req.keep_alive());
    response.prepare_payload();
    auto [wec, w] =
        co_await http::async_write(stream, response, asio::as_tuple(asio::use_awaitable));
    if (wec || !response.keep_alive()) break;
  }
  co_await stream.async_shutdown(asio::as_tuple(asio::use_awaitable));
}

}  // namespace oauth_relay::fakes
