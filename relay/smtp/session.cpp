// The inbound session loop. Replies are batched while pipelined commands are
// already buffered (RFC 2920 §3.2) and flushed before the session waits for
// input. One deadline per command, one for the whole DATA phase.
#include "relay/smtp/session.hpp"

#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/clock.hpp"
#include "common/text.hpp"
#include "config/log.hpp"
#include "relay/smtp/data_decoder.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using smtp::make_reply;

// Room for a whole pipelined burst of commands or a good read of DATA.
constexpr std::size_t input_buffer_size = 16 * 1024;
// How long the last words of a closing session may take to leave.
constexpr auto final_reply_timeout = std::chrono::seconds(5);

}  // namespace

listener_config::listener_config(config::settings s)
    : settings(std::move(s)), router(settings.accounts) {}

smtp_session::smtp_session(asio::ip::tcp::socket socket,
                           std::shared_ptr<const listener_config> config, message_store& store,
                           std::string id)
    : socket_(std::move(socket)),
      config_(std::move(config)),
      store_(store),
      id_(std::move(id)),
      protocol_(
          protocol_settings{config_->settings.hostname, config_->settings.limits.max_message_size,
                            config_->settings.limits.max_recipients},
          config_->router),
      in_(input_buffer_size),
      deadline_(socket_.get_executor(), [this] {
        // The session ends: a timeout is final.
        stop_ = stop_reason::timeout;
        boost::system::error_code ignored;
        socket_.cancel(ignored);
      }) {
  boost::system::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (!ec) {
    auto address = remote.address();
    if (address.is_v6() && address.to_v6().is_v4_mapped()) {
      address = asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6());
    }
    client_ip_ = address.to_string();
  }
}

void smtp_session::interrupt(bool force) {
  if (stop_ == stop_reason::none) stop_ = stop_reason::shutdown;
  if (force || waiting_for_command_ || !in_data_) {
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  }
}

void smtp_session::say_last_words(const smtp::reply& reply) {
  // Best effort without waiting: the client may not be reading at all.
  // Replies still pending (a 250 for the last message) go first.
  reply.append_to(out_);
  boost::system::error_code ec;
  socket_.non_blocking(true, ec);
  socket_.write_some(asio::buffer(out_), ec);
  out_.clear();
}

asio::awaitable<bool> smtp_session::read_more() {
  if (head_ == tail_) {
    head_ = tail_ = 0;
  } else if (tail_ == in_.size() && head_ > 0) {
    std::memmove(in_.data(), in_.data() + head_, tail_ - head_);
    tail_ -= head_;
    head_ = 0;
  }
  // A shutdown lets a message in DATA finish; a timeout ends everything.
  if (stop_ == stop_reason::timeout || (stop_ == stop_reason::shutdown && !in_data_)) {
    co_return false;
  }
  auto [ec, n] = co_await socket_.async_read_some(
      asio::buffer(in_.data() + tail_, in_.size() - tail_), asio::as_tuple(asio::use_awaitable));
  if (ec) {
    if (ec != asio::error::operation_aborted && ec != asio::error::eof) {
      log::debug("session_read_failed").kv("session", id_).kv("error", ec.message());
    }
    co_return false;
  }
  tail_ += n;
  co_return true;
}

asio::awaitable<bool> smtp_session::flush() {
  if (out_.empty()) co_return true;
  auto [ec, n] =
      co_await asio::async_write(socket_, asio::buffer(out_), asio::as_tuple(asio::use_awaitable));
  out_.clear();
  co_return !ec;
}

std::string smtp_session::received_header(const std::string& message_id) const {
  // RFC 5321 §4.4: the trace field each relay prepends.
  const auto& env = protocol_.current_envelope();
  std::string with = env.params.smtputf8 ? "UTF8SMTP" : (protocol_.esmtp() ? "ESMTP" : "SMTP");
  std::string h = "Received: from " + protocol_.helo_name() + " ([" + client_ip_ + "])\r\n\tby " +
                  config_->settings.hostname + " (oauth-relay) with " + with + " id " + message_id;
  if (env.recipients.size() == 1) h += "\r\n\tfor <" + env.recipients.front().address + ">";
  h += "; " + rfc5322_date(now_seconds()) + "\r\n";
  return h;
}

asio::awaitable<bool> smtp_session::receive_data() {
  const auto& limits = config_->settings.limits;
  in_data_ = true;
  deadline_.arm(limits.data_timeout);
  auto draft = store_.begin();
  draft->append(received_header(draft->id()));
  smtp::data_decoder decoder(smtp::max_text_line);
  bool too_big = false;
  for (;;) {
    if (head_ < tail_) {
      decoded_.clear();
      auto step = decoder.feed(std::string_view(in_.data() + head_, tail_ - head_), decoded_);
      head_ += step.consumed;
      if (!too_big && decoder.size() > limits.max_message_size) {
        too_big = true;
        draft.reset();  // keep reading to the end, store nothing
      }
      if (!too_big) draft->append(decoded_);
      if (step.done) break;
    }
    if (!co_await read_more()) {
      in_data_ = false;
      co_return false;
    }
  }
  in_data_ = false;

  smtp::reply reply;
  if (decoder.line_too_long()) {
    reply = make_reply(500, "5.5.2", "Line too long (RFC 5321 limit is 1000 octets with CRLF)");
  } else if (too_big) {
    reply = make_reply(
        552, "5.3.4",
        "Message size exceeds fixed limit of " + std::to_string(limits.max_message_size));
  } else {
    const std::string message_id = draft->id();
    const auto size = draft->size();
    envelope env = protocol_.current_envelope();
    auto result = co_await store_.commit(std::move(draft), env);
    if (result) {
      reply = make_reply(250, "2.0.0", "Ok: queued as " + message_id);
      log::info("message_accepted")
          .kv("session", id_)
          .kv("id", message_id)
          .kv("from", env.sender)
          .kv("account", env.account)
          .kv("recipients", env.recipients.size())
          .kv("size", size);
    } else {
      reply = result.error().code == spool_errc::no_space
                  ? make_reply(452, "4.3.1", "Insufficient system storage, try again later")
                  : make_reply(451, "4.3.0", "Local error in processing, try again later");
      log::error("message_store_failed").kv("session", id_).kv("error", result.error().detail);
    }
  }
  protocol_.end_data();
  reply.append_to(out_);
  co_return true;
}

asio::awaitable<void> smtp_session::run() {
  auto self = shared_from_this();
  const auto& settings = config_->settings;
  deadline_.arm(settings.limits.command_timeout);
  log::debug("session_start").kv("session", id_).kv("client", client_ip_);

  protocol_.greeting().append_to(out_);
  bool discarding = false;  // inside an overlong command line
  bool open = true;
  while (open) {
    const char* begin = in_.data() + head_;
    const auto* newline = static_cast<const char*>(std::memchr(begin, '\n', tail_ - head_));
    if (newline == nullptr) {
      if (tail_ - head_ > smtp::max_command_line) {
        discarding = true;
        head_ = tail_;
      }
      if (!co_await flush()) break;
      waiting_for_command_ = true;
      bool got = co_await read_more();
      waiting_for_command_ = false;
      if (!got) break;
      continue;
    }
    std::string_view line(begin, static_cast<std::size_t>(newline - begin));
    head_ += line.size() + 1;
    const bool too_long = discarding || line.size() + 1 > smtp::max_command_line;
    discarding = false;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto outcome = too_long ? protocol_.on_line_too_long() : protocol_.on_command(line);
    outcome.reply.append_to(out_);
    switch (outcome.then) {
      case smtp_protocol::next::reply:
        break;
      case smtp_protocol::next::close:
        open = false;
        break;
      case smtp_protocol::next::start_data:
        if (!co_await flush()) {
          open = false;
          break;
        }
        open = co_await receive_data();
        break;
    }
    deadline_.arm(settings.limits.command_timeout);
  }

  if (stop_ == stop_reason::timeout) {
    say_last_words(make_reply(421, "4.4.2", settings.hostname + " Error: timeout exceeded"));
    log::info("session_timeout").kv("session", id_).kv("client", client_ip_);
  } else if (stop_ == stop_reason::shutdown) {
    say_last_words(make_reply(421, "4.3.2", settings.hostname + " Service shutting down"));
  } else if (!out_.empty()) {
    deadline_.arm(final_reply_timeout);
    co_await flush();
  }
  deadline_.disarm();
  boost::system::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  log::debug("session_end").kv("session", id_).kv("errors", protocol_.errors());
}

}  // namespace oauth_relay::relay
