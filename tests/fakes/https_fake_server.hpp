// The HTTPS server under the identity providers' stand-ins (fake_oauth,
// fake_microsoft): TLS on 127.0.0.1, its own thread, a handler per request.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <nlohmann/json_fwd.hpp>

#include "fakes/test_pki.hpp"

namespace oauth_relay::fakes {

// What a stand-in answers to one request.
struct https_reply {
  boost::beast::http::status status = boost::beast::http::status::ok;
  std::string content_type = "application/json; charset=utf-8";
  std::string body;
  std::string location;  // a Location header when not empty
};

https_reply json_reply(boost::beast::http::status status, const nlohmann::json& body);
// 302 Found to `location` with an empty body.
https_reply redirect_reply(std::string content_type, std::string location);

struct https_fake_options {
  // When the answer is made relative to set_delay's pause: after it (the
  // request waits, as for a slow server), or before it (the provider has acted,
  // its answer waits to be written). Either way requests_in_flight counts from
  // the start of the pause to the end of the write.
  enum class order { wait_then_handle, handle_then_wait };

  std::string server;  // the Server header of every answer
  // Headers every answer carries after Content-Type.
  std::vector<std::pair<boost::beast::http::field, std::string>> headers;
  // asio::ssl::context options ORed in; 0: the TLS server context's defaults.
  boost::asio::ssl::context::options tls_options = 0;
  order answer = order::wait_then_handle;
};

class https_fake_server {
 public:
  using request = boost::beast::http::request<boost::beast::http::string_body>;
  // Runs on the server's thread, one request at a time.
  using handler = std::function<https_reply(const request&)>;

  // Listens on 127.0.0.1 (an ephemeral port) with a certificate from `pki`
  // for 127.0.0.1 and localhost, and serves from its own thread at once.
  https_fake_server(const test_pki& pki, https_fake_options options, handler handle);
  // Stops the thread first: after this, `handle` is never called again.
  ~https_fake_server();
  https_fake_server(const https_fake_server&) = delete;
  https_fake_server& operator=(const https_fake_server&) = delete;

  std::uint16_t port() const { return port_; }
  void set_delay(std::chrono::milliseconds pause) { delay_.store(pause); }
  // Requests whose answer is not written yet (set_delay makes this window long).
  std::size_t requests_in_flight() const { return in_flight_.load(); }

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  const https_fake_options options_;
  const handler handle_;
  std::atomic<std::chrono::milliseconds> delay_{std::chrono::milliseconds(0)};
  // Declared before io_: the coroutines io_ destroys still count down.
  std::atomic<std::size_t> in_flight_{0};
  boost::asio::ssl::context tls_{boost::asio::ssl::context::tls_server};
  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  std::uint16_t port_ = 0;
  std::thread thread_;
};

}  // namespace oauth_relay::fakes
