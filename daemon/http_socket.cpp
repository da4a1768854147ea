// Beast HTTP/1.1 over a local stream socket, one coroutine per connection on
// the daemon's event loop. Every read and write has a deadline (one
// `deadline` per connection, re-armed per request) and the answers come from
// the route table's owner, so no client can make the loop wait.
#include "daemon/http_socket.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include "common/deadline.hpp"
#include "config/log.hpp"
#include "daemon/health_report.hpp"

namespace oauth_relay::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using asio::use_awaitable;

// After EMFILE/ENFILE, wait instead of spinning on accept.
constexpr auto accept_backoff = std::chrono::milliseconds(100);
// A directory the daemon creates for a socket: anyone may pass through it;
// each socket's own mode (0660 health, 0600 control) decides who connects.
constexpr mode_t socket_directory_mode = 0755;

std::system_error path_error(int error, const http_socket_options& o, const std::string& what) {
  return std::system_error(error, std::generic_category(),
                           o.key + " " + o.path.string() + ": " + what);
}

std::string group_name(gid_t gid) {
  std::vector<char> buffer(16 * 1024);
  group entry{};
  group* found = nullptr;
  if (::getgrgid_r(gid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr)
    return found->gr_name;
  return std::to_string(gid);
}

}  // namespace

http_reply not_found() {
  return {404, "application/json", error_json("not found"), {}};
}

http_reply method_not_allowed(std::string allow) {
  return {405, "application/json", error_json("method not allowed"), std::move(allow)};
}

http_socket::http_socket(asio::io_context& io, http_socket_options options, handler answer)
    : io_(io),
      options_(std::move(options)),
      answer_(std::move(answer)),
      acceptor_(io),
      slot_timer_(io) {}

http_socket::~http_socket() {
  stop();
}

void http_socket::start() {
  namespace fs = std::filesystem;
  const auto& path = options_.path;
  const auto dir = path.parent_path();
  std::error_code ec;
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw path_error(ec.value(), options_, "cannot create " + dir.string());
    ::fchmodat(AT_FDCWD, dir.c_str(), socket_directory_mode, AT_SYMLINK_NOFOLLOW);
  }
  local::endpoint endpoint;
  try {
    endpoint = local::endpoint(path.string());
  } catch (const boost::system::system_error& e) {
    throw path_error(ENAMETOOLONG, options_, "path too long for a Unix socket");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw path_error(EEXIST, options_,
                       "exists and is not a socket; remove it or change the path");
    // A socket file survives a crash. Replace it only when nobody answers on it.
    local::socket probe(io_);
    boost::system::error_code connect_ec;
    probe.connect(endpoint, connect_ec);
    if (!connect_ec) {
      throw path_error(EADDRINUSE, options_,
                       "another process serves it (is another oauth-relayd running?)");
    }
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      throw path_error(errno, options_, "cannot remove the stale socket");
    log::info(options_.key + "_stale_removed").kv("path", path.string());
  }
  try {
    acceptor_.open(endpoint.protocol());
    acceptor_.bind(endpoint);
  } catch (const boost::system::system_error& e) {
    throw path_error(e.code().value(), options_, "cannot listen: " + e.code().message());
  }
  if (::lstat(path.c_str(), &st) == 0) {
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
  }
  listening_ = true;  // from here on stop() removes the file
  // bind() created it under the daemon's umask (0700 for the user alone).
  // The path is not followed: it is the socket just bound, or nothing.
  if (::fchmodat(AT_FDCWD, path.c_str(), options_.mode, AT_SYMLINK_NOFOLLOW) != 0) {
    throw path_error(errno, options_, "cannot set its mode");
  }
  try {
    acceptor_.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    throw path_error(e.code().value(), options_, "cannot listen: " + e.code().message());
  }
  log_listening();
  asio::co_spawn(io_, accept_loop(), [key = options_.key](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error(key + "_accept_failed").kv("error", ex.what());
    }
  });
}

void http_socket::log_listening() const {
  struct stat st {};
  if (::lstat(options_.path.c_str(), &st) != 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  log::info(options_.key + "_listening")
      .kv("path", options_.path.string())
      .kv("mode", mode)
      .kv("group", group_name(st.st_gid));
}

void http_socket::stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  slot_timer_.cancel();
  for (auto* socket : connections_) socket->close(ignored);
  if (!listening_) return;
  // Only our own socket: a newer daemon may already have replaced it.
  struct stat st {};
  if (::lstat(options_.path.c_str(), &st) == 0 && st.st_dev == socket_dev_ &&
      st.st_ino == socket_ino_)
    ::unlink(options_.path.c_str());
}

bool http_socket::peer_allowed(local::socket& socket) const {
  if (!options_.owner_only) return true;
  ucred peer{};
  socklen_t length = sizeof peer;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0) {
    log::warning(options_.key + "_peer_unknown").kv("error", std::strerror(errno));
    return false;
  }
  if (peer.uid == 0 || peer.uid == ::geteuid()) return true;
  log::warning(options_.key + "_refused")
      .kv("uid", static_cast<std::int64_t>(peer.uid))
      .kv("pid", static_cast<std::int64_t>(peer.pid));
  return false;
}

asio::awaitable<void> http_socket::accept_loop() {
  while (!stopping_) {
    if (connections_.size() >= http_max_connections) {
      slot_timer_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await slot_timer_.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(use_awaitable));
    if (stopping_) co_return;
    if (ec) {
      log::warning(options_.key + "_accept_failed").kv("error", ec.message());
      asio::steady_timer pause(io_, accept_backoff);
      co_await pause.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket)), [key = options_.key](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::warning(key + "_connection_failed").kv("error", ex.what());
      }
    });
  }
}

asio::awaitable<void> http_socket::serve(local::socket stream) {
  auto* raw = &stream;
  connections_.insert(raw);
  deadline timeout(stream.get_executor(), [raw] {
    boost::system::error_code ignored;
    raw->cancel(ignored);
  });
  const bool allowed = peer_allowed(stream);
  beast::flat_buffer buffer;
  bool unread_body = false;
  // Whatever happens, the connection leaves connections_ below: stop()
  // closes every socket in it.
  try {
    while (!stopping_) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(http_max_header_bytes);
      parser.body_limit(http_max_body_bytes);
      timeout.arm(http_request_deadline);
      auto [read_ec, read_n] =
          co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(use_awaitable));
      if (!read_ec && !parser.is_done()) {
        // curl asks before sending a body over 1 KiB; an oversized one was
        // already refused with the header (body_limit), so it is never sent.
        if (beast::iequals(parser.get()[http::field::expect], "100-continue")) {
          http::response<http::empty_body> go_on{http::status::continue_, parser.get().version()};
          auto [continue_ec, continue_n] =
              co_await http::async_write(stream, go_on, asio::as_tuple(use_awaitable));
          read_ec = continue_ec;
        }
        if (!read_ec) {
          auto [body_ec, body_n] =
              co_await http::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
          read_ec = body_ec;
        }
      }
      http_reply answer;
      bool keep_alive = false;
      // Refused before its body was read: the client may still be sending it.
      unread_body = read_ec == http::error::body_limit || read_ec == http::error::header_limit;
      unsigned version = 11;
      if (read_ec == http::error::body_limit || read_ec == http::error::header_limit) {
        answer = {413, "application/json", error_json("request too large"), {}};
      } else if (read_ec &&
                 read_ec.category() == http::make_error_code(http::error::bad_target).category() &&
                 read_ec != http::error::end_of_stream && read_ec != http::error::partial_message) {
        answer = {400, "application/json", error_json("malformed HTTP request"), {}};
      } else if (read_ec) {
        break;  // closed, timed out, or stopped
      } else {
        auto& request = parser.get();
        version = request.version();
        keep_alive = request.keep_alive() && allowed;
        const std::string method(request.method_string());
        std::string target(request.target());
        std::string query;
        if (auto q = target.find('?'); q != std::string::npos) {
          query = target.substr(q + 1);
          target.resize(q);
        }
        if (allowed) {
          const http_request asked{method, target, std::move(request.body()), std::move(query)};
          answer = co_await answer_(asked);
        } else {
          answer = {
              403,
              "application/json",
              error_json("only root and the user oauth-relayd runs as may use " + options_.key),
              {}};
        }
        log::debug(options_.key + "_request")
            .kv("method", method)
            .kv("target", target)
            .kv("status", answer.status);
      }
      http::response<http::string_body> response{static_cast<http::status>(answer.status), version};
      response.set(http::field::content_type, answer.content_type);
      response.set(http::field::cache_control, "no-store");
      if (!answer.allow.empty()) response.set(http::field::allow, answer.allow);
      response.keep_alive(keep_alive && !stopping_);
      response.body() = std::move(answer.body);
      response.prepare_payload();
      timeout.arm(http_request_deadline);
      auto [write_ec, write_n] =
          co_await http::async_write(stream, response, asio::as_tuple(use_awaitable));
      if (write_ec || !response.keep_alive()) break;
    }
    if (unread_body && !stopping_) {
      // Closing with unread bytes would reset the connection and the client
      // could lose the answer it was sent: end our side, then take in (and
      // drop) what it still sends, for a bounded time and size.
      boost::system::error_code ignored;
      stream.shutdown(local::socket::shutdown_send, ignored);
      timeout.arm(http_linger_time);
      std::array<char, 4096> sink;
      for (std::size_t drained = 0; drained < http_linger_bytes;) {
        auto [ec, n] =
            co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(use_awaitable));
        if (ec) break;
        drained += n;
      }
    }
  } catch (const std::exception& e) {
    log::warning(options_.key + "_connection_failed").kv("error", e.what());
  }
  boost::system::error_code ignored;
  stream.shutdown(local::socket::shutdown_both, ignored);
  stream.close(ignored);
  connections_.erase(raw);
  slot_timer_.cancel();
}

}  // namespace oauth_relay::daemon
