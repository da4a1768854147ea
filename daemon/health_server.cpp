// Beast HTTP/1.1 over a local stream socket, one coroutine per connection on
// the daemon's event loop. Every read and write has a deadline (one
// `deadline` per connection, re-armed per request) and the
// figures come from the spool's writer thread or from memory, so no client
// can make the loop wait.
#include "daemon/health_server.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <memory>
#include <system_error>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>

#include "auth/token_manager.hpp"
#include "common/clock.hpp"
#include "common/deadline.hpp"
#include "common/text.hpp"
#include "config/log.hpp"
#include "relay/delivery/scheduler.hpp"
#include "relay/smtp/server.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = asio::local::stream_protocol;
using asio::use_awaitable;

// After EMFILE/ENFILE, wait instead of spinning on accept.
constexpr auto accept_backoff = std::chrono::milliseconds(100);

std::system_error path_error(int error, const std::filesystem::path& path,
                             const std::string& what) {
  return std::system_error(error, std::generic_category(),
                           "health_socket " + path.string() + ": " + what);
}

}  // namespace

health_server::health_server(asio::io_context& io, std::filesystem::path socket_path, sources s,
                             std::string version)
    : io_(io),
      path_(std::move(socket_path)),
      sources_(s),
      version_(std::move(version)),
      started_(std::chrono::steady_clock::now()),
      acceptor_(io),
      slot_timer_(io),
      durations_(delivery_duration_buckets()) {}

health_server::~health_server() {
  stop();
}

void health_server::start() {
  namespace fs = std::filesystem;
  const auto dir = path_.parent_path();
  std::error_code ec;
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw path_error(ec.value(), path_, "cannot create " + dir.string());
    // The group (administrators, monitoring) may reach the socket inside.
    ::chmod(dir.c_str(), 0750);
  }
  local::endpoint endpoint;
  try {
    endpoint = local::endpoint(path_.string());
  } catch (const boost::system::system_error& e) {
    throw path_error(ENAMETOOLONG, path_, "path too long for a Unix socket");
  }
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw path_error(EEXIST, path_, "exists and is not a socket; remove it or change the path");
    // A socket file survives a crash. Replace it only when nobody answers on it.
    local::socket probe(io_);
    boost::system::error_code connect_ec;
    probe.connect(endpoint, connect_ec);
    if (!connect_ec) {
      throw path_error(EADDRINUSE, path_,
                       "another process serves it (is another oauth-relayd running?)");
    }
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT)
      throw path_error(errno, path_, "cannot remove the stale socket");
    log::info("health_socket_stale_removed").kv("path", path_.string());
  }
  try {
    acceptor_.open(endpoint.protocol());
    acceptor_.bind(endpoint);
    // bind() created it under the daemon's umask (0700); widen to the group.
    if (::chmod(path_.c_str(), 0660) != 0) throw path_error(errno, path_, "cannot chmod 0660");
    acceptor_.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    throw path_error(e.code().value(), path_, "cannot listen: " + e.code().message());
  }
  if (::lstat(path_.c_str(), &st) == 0) {
    socket_dev_ = st.st_dev;
    socket_ino_ = st.st_ino;
  }
  listening_ = true;
  asio::co_spawn(io_, accept_loop(), [](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      log::error("health_accept_failed").kv("error", ex.what());
    }
  });
  sources_.scheduler.on_delivery_duration([this](double seconds) { durations_.observe(seconds); });
}

void health_server::stop() {
  if (stopping_) return;
  stopping_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  slot_timer_.cancel();
  sources_.scheduler.on_delivery_duration({});
  for (auto* socket : connections_) socket->close(ignored);
  if (!listening_) return;
  // Only our own socket: a newer daemon may already have replaced it.
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == socket_dev_ && st.st_ino == socket_ino_)
    ::unlink(path_.c_str());
}

asio::awaitable<void> health_server::accept_loop() {
  while (!stopping_) {
    if (connections_.size() >= health_max_connections) {
      slot_timer_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await slot_timer_.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(use_awaitable));
    if (stopping_) co_return;
    if (ec) {
      log::warning("health_accept_failed").kv("error", ec.message());
      asio::steady_timer pause(io_, accept_backoff);
      co_await pause.async_wait(asio::as_tuple(use_awaitable));
      continue;
    }
    asio::co_spawn(io_, serve(std::move(socket)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        log::warning("health_connection_failed").kv("error", ex.what());
      }
    });
  }
}

asio::awaitable<void> health_server::serve(local::socket stream) {
  auto* raw = &stream;
  connections_.insert(raw);
  deadline timeout(stream.get_executor(), [raw] {
    boost::system::error_code ignored;
    raw->cancel(ignored);
  });
  beast::flat_buffer buffer;
  bool unread_body = false;
  // Whatever happens, the connection leaves connections_ below: stop()
  // closes every socket in it.
  try {
    while (!stopping_) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(health_max_header_bytes);
      parser.body_limit(health_max_body_bytes);
      timeout.arm(health_request_deadline);
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
      reply answer;
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
        keep_alive = request.keep_alive();
        std::string method(request.method_string());
        std::string target(request.target());
        std::string body = std::move(request.body());
        answer = co_await respond(std::move(method), std::move(target), std::move(body));
        log::debug("health_request")
            .kv("method", std::string(request.method_string()))
            .kv("target", std::string(request.target()))
            .kv("status", answer.status);
      }
      http::response<http::string_body> response{static_cast<http::status>(answer.status), version};
      response.set(http::field::content_type, answer.content_type);
      response.set(http::field::cache_control, "no-store");
      if (!answer.allow.empty()) response.set(http::field::allow, answer.allow);
      response.keep_alive(keep_alive && !stopping_);
      response.body() = std::move(answer.body);
      response.prepare_payload();
      timeout.arm(health_request_deadline);
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
      timeout.arm(health_linger_time);
      std::array<char, 4096> sink;
      for (std::size_t drained = 0; drained < health_linger_bytes;) {
        auto [ec, n] =
            co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(use_awaitable));
        if (ec) break;
        drained += n;
      }
    }
  } catch (const std::exception& e) {
    log::warning("health_connection_failed").kv("error", e.what());
  }
  boost::system::error_code ignored;
  stream.shutdown(local::socket::shutdown_both, ignored);
  stream.close(ignored);
  connections_.erase(raw);
  slot_timer_.cancel();
}

asio::awaitable<health_server::reply> health_server::respond(std::string method, std::string target,
                                                             std::string body) {
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  const bool get = method == "GET";
  const bool post = method == "POST";
  auto not_allowed = [](const char* allow) {
    return reply{405, "application/json", error_json("method not allowed"), allow};
  };
  if (target == "/health") {
    if (!get) co_return not_allowed("GET");
    auto r = co_await health();
    co_return r;
  }
  if (target == "/metrics") {
    if (!get) co_return not_allowed("GET");
    auto r = co_await metrics();
    co_return r;
  }
  if (target == "/queue") {
    if (!get) co_return not_allowed("GET");
    auto r = co_await queue();
    co_return r;
  }
  if (target == "/queue/retry") {
    if (!post) co_return not_allowed("POST");
    auto r = co_await retry(std::move(body));
    co_return r;
  }
  if (target == "/queue/delete") {
    if (!post) co_return not_allowed("POST");
    auto r = co_await remove(std::move(body));
    co_return r;
  }
  if (target == "/accounts/reload") {
    if (!post) co_return not_allowed("POST");
    auto r = co_await reload();
    co_return r;
  }
  co_return reply{404, "application/json", error_json("not found"), {}};
}

health_input health_server::gather(const relay::spool_result<relay::queue_summary>& queue) const {
  health_input in;
  in.now = now_ms() / 1000;
  in.uptime_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  if (queue) {
    in.queue = *queue;
  } else {
    in.queue_error = one_line(queue.error().detail);
  }
  const auto& counters = sources_.scheduler.counters();
  for (auto& status : sources_.tokens.status()) {
    account_health a;
    a.status = std::move(status);
    const auto& address = a.status.address;
    if (auto it = counters.delivered_by_account.find(address);
        it != counters.delivered_by_account.end())
      a.delivered = it->second;
    if (auto it = counters.failures_in_a_row.find(address); it != counters.failures_in_a_row.end())
      a.failures_in_a_row = it->second;
    if (auto it = counters.last_error_by_account.find(address);
        it != counters.last_error_by_account.end())
      a.last_delivery_error = it->second;
    in.accounts.push_back(std::move(a));
  }
  in.messages_lost = counters.messages_lost;
  in.last_lost_at = counters.last_lost_at;
  in.last_lost = one_line(counters.last_lost);
  return in;
}

asio::awaitable<health_server::reply> health_server::health() {
  auto summary = co_await sources_.spool.admin().summary();
  if (!summary) log::error("queue_summary_failed").kv("error", summary.error().detail);
  const auto in = gather(summary);
  const auto verdict = evaluate(in);
  co_return reply{
      verdict.healthy ? 200u : 503u, "application/json", health_json(in, verdict, version_), {}};
}

asio::awaitable<health_server::reply> health_server::metrics() {
  auto summary = co_await sources_.spool.admin().summary();
  if (!summary) {
    // No figures rather than zeros that would read as an empty queue.
    log::error("queue_summary_failed").kv("error", summary.error().detail);
    co_return reply{500,
                    "text/plain; charset=utf-8",
                    "the queue could not be read: " + one_line(summary.error().detail) + "\n",
                    {}};
  }
  metrics_input in;
  in.health = gather(summary);
  const auto& c = sources_.scheduler.counters();
  in.received = sources_.spool.messages_received();
  in.bounced = c.bounced;
  in.attempts_delivered = c.attempts_delivered;
  in.attempts_deferred = c.attempts_deferred;
  in.attempts_failed = c.attempts_failed;
  in.smtp_sessions = sources_.smtp.active_sessions();
  in.upstream_connections = c.upstream_connections_active;
  co_return reply{200, "text/plain; version=0.0.4", render_metrics(in, durations_, version_), {}};
}

asio::awaitable<health_server::reply> health_server::queue() {
  auto messages = co_await sources_.spool.admin().list();
  if (!messages) {
    log::error("queue_list_failed").kv("error", messages.error().detail);
    co_return reply{
        500, "application/json", error_json("the spool failed: " + messages.error().detail), {}};
  }
  co_return reply{200, "application/json", queue_json(*messages, now_ms()), {}};
}

asio::awaitable<health_server::reply> health_server::retry(std::string body) {
  std::string problem;
  auto selection = parse_queue_selection(body, /*allow_all=*/true, problem);
  if (!selection) co_return reply{400, "application/json", error_json(problem), {}};
  const auto now = now_ms();
  auto result =
      co_await sources_.spool.admin().retry(std::move(selection->ids), selection->all, now);
  if (!result) {
    const auto detail = result.error().detail;
    log::error("queue_retry_failed").kv("error", detail);
    co_return reply{500, "application/json", error_json("the spool failed: " + detail), {}};
  }
  log::notice("queue_retry")
      .kv("all", selection->all ? "yes" : "no")
      .kv("changed", result->changed)
      .kv("unknown", result->unknown.size());
  sources_.scheduler.wake();
  co_return reply{200, "application/json", change_json(*result, "changed"), {}};
}

asio::awaitable<health_server::reply> health_server::remove(std::string body) {
  std::string problem;
  auto selection = parse_queue_selection(body, /*allow_all=*/false, problem);
  if (!selection) co_return reply{400, "application/json", error_json(problem), {}};
  auto& scheduler = sources_.scheduler;
  auto start = [&scheduler](auto handler, std::vector<std::string> ids) {
    // std::function needs a copyable callable; the coroutine's handler is not.
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    scheduler.delete_messages(std::move(ids), [shared](relay::spool_result<relay::queue_change> r) {
      std::move (*shared)(std::move(r));
    });
  };
  auto ids = std::move(selection->ids);
  auto result = co_await asio::async_initiate<const asio::use_awaitable_t<>&,
                                              void(relay::spool_result<relay::queue_change>)>(
      start, use_awaitable, std::move(ids));
  if (!result) {
    const auto detail = result.error().detail;
    log::error("queue_delete_failed").kv("error", detail);
    co_return reply{500, "application/json", error_json("the spool failed: " + detail), {}};
  }
  log::notice("queue_delete").kv("deleted", result->changed).kv("unknown", result->unknown.size());
  co_return reply{200, "application/json", change_json(*result, "deleted"), {}};
}

asio::awaitable<health_server::reply> health_server::reload() {
  using changes = std::vector<std::pair<std::string, auth::token_state>>;
  auto& tokens = sources_.tokens;
  auto start = [&tokens](auto handler) {
    auto shared = std::make_shared<decltype(handler)>(std::move(handler));
    tokens.reload([shared](changes c) { std::move (*shared)(std::move(c)); });
  };
  auto changed = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(changes)>(
      start, use_awaitable);
  // Every usable account's waiting mail becomes due now: the token just
  // stored may already have been picked up by the regular poll.
  std::size_t accounts = 0;
  for (const auto& status : tokens.status()) {
    sources_.scheduler.account_state_changed(status.address, status.state);
    ++accounts;
  }
  log::notice("accounts_reloaded").kv("changed", changed.size()).kv("accounts", accounts);
  co_return reply{200, "application/json", "{\"reloaded\":true}\n", {}};
}

}  // namespace oauth_relay::daemon
