// The inbound session loop. Replies are batched while pipelined commands are
// already buffered (RFC 2920 §3.2) and flushed before the session waits for
// input. One deadline per command, one for the whole DATA phase, one for the
// TLS handshake. AUTH lines are wiped from the input buffer once read.
#include "relay/smtp/session.hpp"

#include <string.h>

#include <algorithm>
#include <cstring>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/clock.hpp"
#include "common/offload.hpp"
#include "common/text.hpp"
#include "config/log.hpp"
#include "relay/smtp/data_decoder.hpp"
#include "relay/smtp/header_completion.hpp"
#include "relay/smtp/peer_identity.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using smtp::make_reply;

// Room for a whole pipelined burst of commands or a good read of DATA.
constexpr std::size_t input_buffer_size = 16 * 1024;
// How long the last words of a closing session may take to leave.
constexpr auto final_reply_timeout = std::chrono::seconds(5);
// A TLS handshake is a few round trips; a client that takes longer is not trying.
constexpr auto tls_handshake_timeout = std::chrono::seconds(30);
// RFC 4954 §4 leaves the pace to the server: each wrong password costs the
// guesser this much (on a timer: other sessions go on), three per connection.
constexpr auto failed_login_delay = std::chrono::milliseconds(1500);

// "Date,Message-ID" for the log line of a message the relay completed.
std::string added_fields(unsigned added) {
  std::string text;
  if (added & smtp::header_completion::date) text += "Date";
  if (added & smtp::header_completion::message_id)
    text += (text.empty() ? "" : ",") + std::string("Message-ID");
  if (added & smtp::header_completion::from)
    text += (text.empty() ? "" : ",") + std::string("From");
  return text;
}

bool any_permit_names_groups(const config::settings& s) {
  return std::any_of(s.accounts.begin(), s.accounts.end(),
                     [](const auto& a) { return a.permit && !a.permit->local_groups.empty(); });
}

}  // namespace

listener_config::listener_config(config::settings s,
                                 std::shared_ptr<asio::ssl::context> tls_context,
                                 std::shared_ptr<const login_table> login_table,
                                 std::shared_ptr<const local_addresses> local_table)
    : settings(std::move(s)),
      router(settings.accounts),
      tls(std::move(tls_context)),
      logins(std::move(login_table)),
      local(std::move(local_table)),
      needs_groups(any_permit_names_groups(settings)) {}

smtp_session::smtp_session(socket_type socket, client_identity identity,
                           std::shared_ptr<const listener_config> config, message_store& store,
                           session_services services, std::string id)
    : socket_(std::move(socket)),
      config_(std::move(config)),
      store_(store),
      services_(services),
      id_(std::move(id)),
      protocol_(
          protocol_settings{
              .hostname = config_->settings.hostname,
              .max_message_size = config_->settings.limits.max_message_size,
              .max_recipients = config_->settings.limits.max_recipients,
              .starttls = config_->tls != nullptr,
              .logins = config_->logins != nullptr,
              .require_login = config_->settings.clients_require_login,
              .local = config_->local.get(),
          },
          config_->router, std::move(identity)),
      in_(input_buffer_size),
      deadline_(socket_.get_executor(), [this] {
        // The session ends: a timeout is final.
        stop_ = stop_reason::timeout;
        boost::system::error_code ignored;
        socket_.cancel(ignored);
      }) {}

std::string smtp_session::client_text() const {
  const auto& identity = protocol_.identity();
  return identity.via == transport::unix_socket ? std::string("unix") : identity.ip;
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
  if (tls_) {
    tls_->write_some(asio::buffer(out_), ec);
  } else {
    socket_.write_some(asio::buffer(out_), ec);
  }
  out_.clear();
}

void smtp_session::close() {
  boost::system::error_code ignored;
  if (tls_) {
    // close_notify without waiting for the client's (the socket is non-blocking by now or gone).
    socket_.non_blocking(true, ignored);
    tls_->shutdown(ignored);
  }
  socket_.shutdown(socket_type::shutdown_both, ignored);
  socket_.close(ignored);
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
  const auto room = asio::buffer(in_.data() + tail_, in_.size() - tail_);
  boost::system::error_code ec;
  std::size_t n = 0;
  if (tls_) {
    std::tie(ec, n) = co_await tls_->async_read_some(room, asio::as_tuple(asio::use_awaitable));
  } else {
    std::tie(ec, n) = co_await socket_.async_read_some(room, asio::as_tuple(asio::use_awaitable));
  }
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
  boost::system::error_code ec;
  if (tls_) {
    std::tie(ec, std::ignore) =
        co_await asio::async_write(*tls_, asio::buffer(out_), asio::as_tuple(asio::use_awaitable));
  } else {
    std::tie(ec, std::ignore) = co_await asio::async_write(socket_, asio::buffer(out_),
                                                           asio::as_tuple(asio::use_awaitable));
  }
  out_.clear();
  co_return !ec;
}

std::string smtp_session::received_header(const std::string& message_id) const {
  // RFC 5321 §4.4: the trace field each relay prepends.
  const auto& env = protocol_.current_envelope();
  std::string h = "Received: from " + protocol_.helo_name() + " (" +
                  received_comment(protocol_.identity(), protocol_.login()) + ")\r\n\tby " +
                  config_->settings.hostname + " (oauth-relay) with " + protocol_.received_with() +
                  " id " + message_id;
  if (env.recipients.size() == 1) h += "\r\n\tfor <" + env.recipients.front().address + ">";
  h += "; " + rfc5322_date(now_seconds()) + "\r\n";
  return h;
}

smtp::submission_fields smtp_session::submission_fields(const std::string& message_id) const {
  // RFC 6409 §8.2 and §8.3: the time it arrived, and an id made of the
  // relay's own queue id, unique on its own (<ID.TIMESTAMP@hostname>).
  const auto& hostname = config_->settings.hostname;
  const auto now = now_seconds();
  const auto& sender = protocol_.current_envelope().sender;
  return {rfc5322_date(now), "<" + message_id + "." + std::to_string(now) + "@" + hostname + ">",
          sender.empty() ? "MAILER-DAEMON@" + hostname : sender};
}

asio::awaitable<bool> smtp_session::receive_data() {
  const auto& limits = config_->settings.limits;
  in_data_ = true;
  deadline_.arm(limits.data_timeout);
  auto draft = store_.begin();
  draft->append(received_header(draft->id()));
  smtp::data_decoder decoder(smtp::max_text_line);
  smtp::header_completion header(submission_fields(draft->id()));
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
      if (!too_big) {
        if (header.passing_through()) {
          draft->append(decoded_);
        } else {
          completed_.clear();
          header.feed(decoded_, completed_);
          if (step.done) header.finish(completed_);
          draft->append(completed_);
        }
      }
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
      auto line = log::info("message_accepted");
      line.kv("session", id_)
          .kv("id", message_id)
          .kv("from", env.sender)
          .kv("account", env.account)
          .kv("recipients", env.recipients.size())
          .kv("size", size);
      if (const auto added = added_fields(header.added()); !added.empty()) line.kv("added", added);
      if (const auto& uid = protocol_.identity().uid) line.kv("uid", *uid);
      if (const auto& login = protocol_.login()) line.kv("login", *login);
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

asio::awaitable<bool> smtp_session::start_tls() {
  // RFC 3207 §4.2 (and CVE-2011-0411): whatever the client sent after
  // STARTTLS, before the handshake, was not protected and is dropped.
  const std::size_t dropped = tail_ - head_;
  ::explicit_bzero(in_.data(), tail_);
  head_ = tail_ = 0;
  tls_ = std::make_unique<asio::ssl::stream<socket_type&>>(socket_, *config_->tls);
  deadline_.arm(std::min<std::chrono::steady_clock::duration>(
      tls_handshake_timeout, config_->settings.limits.command_timeout));
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server,
                                             asio::as_tuple(asio::use_awaitable));
  if (ec) {
    log::info("tls_handshake_failed")
        .kv("session", id_)
        .kv("client", client_text())
        .kv("error", deadline_.expired() ? std::string("timeout") : ec.message());
    // Nothing more can be said: not in the clear, and there is no TLS to say
    // it in. No last words, not even for a timeout or a shutdown.
    tls_.reset();
    stop_ = stop_reason::none;
    co_return false;
  }
  protocol_.on_tls_started();
  log::debug("tls_started")
      .kv("session", id_)
      .kv("protocol", SSL_get_version(tls_->native_handle()))
      .kv("cipher", SSL_get_cipher_name(tls_->native_handle()))
      .kv("dropped", dropped);
  co_return true;
}

asio::awaitable<bool> smtp_session::check_credentials() {
  auto given = protocol_.take_credentials();
  const std::string name = given.name;
  bool valid = false;
  if (config_->logins) {
    valid = co_await services_.passwords.check(config_->logins, std::move(given));
  }
  given.password.wipe();
  if (!valid) {
    asio::steady_timer pause(socket_.get_executor(), failed_login_delay);
    co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  auto outcome = protocol_.on_credentials_checked(valid, name);
  auto line = valid ? log::info("login") : log::notice("login_failed");
  line.kv("session", id_).kv("client", client_text());
  if (const auto& uid = protocol_.identity().uid) line.kv("uid", *uid);
  line.kv("login", one_line(name, max_credential_length));
  if (outcome.then == smtp_protocol::next::close) line.kv("action", "closing the session");
  outcome.reply.append_to(out_);
  co_return outcome.then != smtp_protocol::next::close;
}

asio::awaitable<void> smtp_session::run() {
  auto self = shared_from_this();
  const auto& settings = config_->settings;
  deadline_.arm(settings.limits.command_timeout);
  if (const auto uid = protocol_.identity().uid; uid && config_->needs_groups) {
    // NSS may ask a directory server: not on the event loop.
    auto lookup = [uid = *uid] { return user_groups(uid); };
    auto groups = co_await run_blocking(services_.blocking, socket_.get_executor(), lookup);
    protocol_.learned_groups(std::move(groups));
  }
  {
    auto line = log::debug("session_start");
    line.kv("session", id_).kv("client", client_text());
    if (const auto& uid = protocol_.identity().uid) line.kv("uid", *uid);
    if (const auto& pid = protocol_.identity().pid) line.kv("pid", *pid);
  }

  protocol_.greeting().append_to(out_);
  bool discarding = false;  // inside an overlong command line
  bool open = true;
  while (open) {
    char* begin = in_.data() + head_;
    const auto* newline = static_cast<const char*>(std::memchr(begin, '\n', tail_ - head_));
    if (newline == nullptr) {
      if (tail_ - head_ > smtp::max_command_line) {
        // It may be an answer to AUTH: not kept.
        ::explicit_bzero(begin, tail_ - head_);
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
    const std::size_t length = static_cast<std::size_t>(newline - begin);
    std::string_view line(begin, length);
    head_ += length + 1;
    const bool too_long = discarding || length + 1 > smtp::max_command_line;
    discarding = false;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto outcome = too_long ? protocol_.on_line_too_long() : protocol_.on_command(line);
    if (outcome.secret_line) ::explicit_bzero(begin, length + 1);
    if (outcome.refused) {
      auto refused = log::notice("sender_refused");
      refused.kv("session", id_).kv("client", client_text());
      if (const auto& uid = protocol_.identity().uid) refused.kv("uid", *uid);
      if (const auto& login = protocol_.login()) refused.kv("login", *login);
      refused.kv("from", outcome.refused->sender)
          .kv("account", outcome.refused->account)
          .kv("reason", "not in the account's permit");
    }
    if (outcome.then != smtp_protocol::next::check_credentials) outcome.reply.append_to(out_);
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
      case smtp_protocol::next::start_tls:
        open = co_await flush();
        if (open) open = co_await start_tls();
        break;
      case smtp_protocol::next::check_credentials:
        open = co_await check_credentials();
        break;
    }
    deadline_.arm(settings.limits.command_timeout);
  }

  if (stop_ == stop_reason::timeout) {
    say_last_words(make_reply(421, "4.4.2", settings.hostname + " Error: timeout exceeded"));
    log::info("session_timeout").kv("session", id_).kv("client", client_text());
  } else if (stop_ == stop_reason::shutdown) {
    say_last_words(make_reply(421, "4.3.2", settings.hostname + " Service shutting down"));
  } else if (!out_.empty()) {
    deadline_.arm(final_reply_timeout);
    co_await flush();
  }
  deadline_.disarm();
  close();
  log::debug("session_end").kv("session", id_).kv("errors", protocol_.errors());
}

}  // namespace oauth_relay::relay
