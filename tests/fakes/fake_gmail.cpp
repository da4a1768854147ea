// The Gmail stand-in: one coroutine per connection over asio::ssl::stream,
// Gmail's reply texts, and switches read under a mutex so a test can flip
// them while the server runs on its own thread.
#include "fakes/fake_gmail.hpp"

#include <array>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <tuple>
#include <variant>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "common/text.hpp"
#include "relay/delivery/upstream_reply.hpp"
#include "relay/smtp/data_decoder.hpp"
#include "relay/smtp/parser.hpp"

namespace oauth_relay::fakes {

namespace asio = boost::asio;

namespace {

// Gmail's texts, as of 2024.
constexpr const char* greeting = "220 smtp.gmail.com ESMTP fake\r\n";
constexpr const char* greeting_421 =
    "421 4.7.0 Try again later, closing connection. (EHLO) fake - gsmtp\r\n";
constexpr const char* auth_required =
    "530-5.7.0 Authentication Required. For more information, go to\r\n"
    "530 5.7.0  https://support.google.com/mail/?p=WantAuthError fake - gsmtp\r\n";
// {"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}
constexpr const char* auth_challenge =
    "334 eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNv"
    "bS8ifQ==\r\n";
constexpr const char* auth_rejected =
    "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials fake - gsmtp\r\n";
constexpr const char* no_such_user =
    "550-5.1.1 The email account that you tried to reach does not exist. Please try\r\n"
    "550-5.1.1 double-checking the recipient's email address for typos or\r\n"
    "550-5.1.1 unnecessary spaces. For more information, go to\r\n"
    "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser fake - gsmtp\r\n";
constexpr const char* daily_limit_exceeded =
    "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\r\n"
    "550-5.4.5 sending limits go to\r\n"
    "550 5.4.5  https://support.google.com/a/answer/166852 fake - gsmtp\r\n";
constexpr const char* try_again_later =
    "421 4.7.0 Try again later, closing connection. (MAIL) fake - gsmtp\r\n";
constexpr const char* data_451 =
    "451 4.3.0 Mail server temporarily rejected message. fake - gsmtp\r\n";
constexpr const char* starttls_first =
    "530 5.7.0 Must issue a STARTTLS command first. fake - gsmtp\r\n";
constexpr const char* auth_list = "AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH";

// Lines longer than this end the connection (Gmail's own limit is far lower
// for commands; this only keeps a broken client from eating memory).
constexpr std::size_t max_line = 64 * 1024;

bool take_one(int& counter) {
  if (counter <= 0) return false;
  --counter;
  return true;
}

}  // namespace

struct fake_gmail::impl : std::enable_shared_from_this<impl> {
  struct switches {
    int greet_421 = 0;
    int fail_data_451 = 0;
    int drop_after_data = 0;
    int reject_auth = 0;
    int throttle_mail = 0;
    double throttle_probability = 0;  // of a 421 to each MAIL
    std::minstd_rand throttle_draws;
    std::size_t throttled = 0;       // MAIL commands answered 421
    std::size_t daily_limit = 0;     // 0: none
    std::size_t accepted_today = 0;  // messages accepted since daily_limit was set
    std::set<std::string> rejected_recipients;
    std::set<std::string> send_as_denied;  // MAIL FROM addresses
    std::chrono::milliseconds reply_delay{0};
    bool offer_starttls = true;
    bool offer_pipelining = true;
    bool offer_smtputf8 = true;
    bool offer_dsn = false;
    std::string inject_after_starttls;
    std::string auth_failure_reply;  // empty: Gmail's 334 dance
    token_validator validator;
  };

  impl(mode m, const pem_pair& certificate, std::uint16_t port)
      : mode_(m), tls_(asio::ssl::context::tls_server), acceptor_(ioc_) {
    SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
    tls_.use_certificate_chain(asio::buffer(certificate.certificate));
    tls_.use_private_key(asio::buffer(certificate.private_key), asio::ssl::context::pem);
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
  }

  void start() {
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    thread_ = std::thread([self = shared_from_this()] { self->ioc_.run(); });
  }

  void stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
  }

  switches get() const {
    std::lock_guard lock(mutex_);
    return switches_;
  }
  std::chrono::milliseconds reply_delay() const {
    std::lock_guard lock(mutex_);
    return switches_.reply_delay;
  }
  template <typename F>
  void change(F f) {
    std::lock_guard lock(mutex_);
    f(switches_);
  }

  void record_command(std::string line) {
    std::lock_guard lock(mutex_);
    commands_.push_back(std::move(line));
  }

  // A connection authenticated as `user` (`delta` +1), or one closed (-1).
  void count_login(const std::string& user, int delta) {
    std::lock_guard lock(logins_mutex_);
    auto& now = logged_in_[user];
    now = delta > 0 ? now + 1 : now - 1;
    auto& peak = peak_logins_[user];
    peak = std::max(peak, now);
  }

  void record_message(message m) {
    m.accepted_at = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(mutex_);
      messages_.push_back(std::move(m));
    }
    delivered_.notify_all();
  }

  class session;
  asio::awaitable<void> accept_loop();
  static asio::awaitable<void> run_session(std::shared_ptr<session> s);

  mode mode_;
  // Before ioc_: sessions still in ioc_ when it is destroyed update them.
  std::atomic<std::size_t> transactions_open_{0};
  mutable std::mutex logins_mutex_;
  std::map<std::string, std::size_t> logged_in_;    // connections authenticated now, by user
  std::map<std::string, std::size_t> peak_logins_;  // the most at one time, by user
  asio::io_context ioc_;
  asio::ssl::context tls_;
  asio::ip::tcp::acceptor acceptor_;
  std::uint16_t port_ = 0;
  std::thread thread_;

  mutable std::mutex mutex_;
  mutable std::condition_variable delivered_;
  switches switches_;
  std::vector<message> messages_;
  std::vector<std::string> commands_;
  std::atomic<std::size_t> connections_{0};
  std::atomic<std::size_t> tls_handshakes_{0};
  std::atomic<std::size_t> auth_attempts_{0};
  std::atomic<std::size_t> logins_{0};
  std::atomic<std::size_t> auth_failures_{0};
};

// One client connection, a straight loop of read line → reply.
class fake_gmail::impl::session {
 public:
  session(fake_gmail::impl& server, asio::ip::tcp::socket socket)
      : server_(server), stream_(std::move(socket), server.tls_), timer_(server.ioc_) {}
  ~session() {
    close_transaction();
    if (!user_.empty()) server_.count_login(user_, -1);
  }

  asio::awaitable<void> run() {
    if (server_.mode_ == fake_gmail::mode::implicit) {
      const bool ok = co_await handshake();
      if (!ok) co_return;
    }
    bool refuse = false;
    server_.change([&](auto& s) { refuse = take_one(s.greet_421); });
    respond(refuse ? greeting_421 : greeting);
    bool open = !refuse;
    while (open) {
      const bool flushed = co_await flush();
      if (!flushed) co_return;
      // The reply that ended a transaction (or RSET) has left.
      if (!in_transaction_) close_transaction();
      auto line = co_await read_line();
      if (!line) co_return;
      open = co_await on_command(*line);
    }
    co_await flush();
  }

 private:
  using message = fake_gmail::message;

  // A transaction counts as open from MAIL's 250 until the reply that ends it
  // has been written (or the connection is gone): the window in which a client
  // killed mid-delivery may deliver the message again.
  void open_transaction() {
    if (counted_) return;
    counted_ = true;
    ++server_.transactions_open_;
  }
  void close_transaction() {
    if (!counted_) return;
    counted_ = false;
    --server_.transactions_open_;
  }

  // Replies are collected here and written by flush(), after the reply delay.
  void respond(std::string_view text) { out_ += text; }

  asio::awaitable<bool> handshake() {
    auto [ec] = co_await stream_.async_handshake(asio::ssl::stream_base::server,
                                                 asio::as_tuple(asio::use_awaitable));
    if (ec) co_return false;
    tls_ = true;
    ++server_.tls_handshakes_;
    co_return true;
  }

  asio::awaitable<bool> flush() {
    if (out_.empty()) co_return true;
    const auto delay = server_.reply_delay();
    if (delay.count() > 0) {
      timer_.expires_after(delay);
      co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    boost::system::error_code ec;
    if (tls_) {
      auto [e, n] = co_await asio::async_write(stream_, asio::buffer(out_),
                                               asio::as_tuple(asio::use_awaitable));
      ec = e;
    } else {
      auto [e, n] = co_await asio::async_write(stream_.next_layer(), asio::buffer(out_),
                                               asio::as_tuple(asio::use_awaitable));
      ec = e;
    }
    out_.clear();
    co_return !ec;
  }

  asio::awaitable<bool> read_more() {
    boost::system::error_code ec;
    std::size_t n = 0;
    if (tls_) {
      auto [e, count] = co_await stream_.async_read_some(asio::buffer(buffer_),
                                                         asio::as_tuple(asio::use_awaitable));
      ec = e;
      n = count;
    } else {
      auto [e, count] = co_await stream_.next_layer().async_read_some(
          asio::buffer(buffer_), asio::as_tuple(asio::use_awaitable));
      ec = e;
      n = count;
    }
    if (ec) co_return false;
    ++reads_;
    in_.append(buffer_.data(), n);
    co_return true;
  }

  asio::awaitable<std::optional<std::string>> read_line() {
    for (;;) {
      const auto newline = in_.find('\n');
      if (newline != std::string::npos) {
        std::string line = in_.substr(0, newline);
        in_.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        co_return line;
      }
      if (in_.size() > max_line) co_return std::nullopt;
      const bool more = co_await read_more();
      if (!more) co_return std::nullopt;
    }
  }

  bool needs_starttls() const {
    return !tls_ && server_.mode_ == fake_gmail::mode::starttls && server_.get().offer_starttls;
  }

  std::string ehlo_reply() const {
    const auto s = server_.get();
    std::vector<std::string> lines{"smtp.gmail.com at your service", "SIZE 35882577", "8BITMIME"};
    lines.push_back(needs_starttls() ? "STARTTLS" : auth_list);
    lines.push_back("ENHANCEDSTATUSCODES");
    if (s.offer_pipelining) lines.push_back("PIPELINING");
    if (s.offer_dsn) lines.push_back("DSN");
    lines.push_back("CHUNKING");
    if (s.offer_smtputf8) lines.push_back("SMTPUTF8");
    std::string r;
    for (std::size_t i = 0; i < lines.size(); ++i) {
      r += (i + 1 == lines.size() ? "250 " : "250-") + lines[i] + "\r\n";
    }
    return r;
  }

  void reset_transaction() {
    in_transaction_ = false;
    current_ = message{};
    mail_read_ = 0;
  }

  // False when the connection is to end (after the replies are flushed).
  asio::awaitable<bool> on_command(const std::string& line) {
    const auto parsed = smtp::parse_command(line);
    const auto verb = parsed.cmd.name;
    const std::string argument(parsed.cmd.argument);
    server_.record_command(verb == smtp::verb::auth
                               ? "AUTH " + argument.substr(0, argument.find(' ')) + " ********"
                               : line);
    bool open = true;
    switch (verb) {
      case smtp::verb::ehlo:
        greeted_ = true;
        reset_transaction();
        respond(ehlo_reply());
        break;
      case smtp::verb::helo:
        greeted_ = true;
        reset_transaction();
        respond("250 smtp.gmail.com at your service\r\n");
        break;
      case smtp::verb::starttls:
        open = co_await on_starttls();
        break;
      case smtp::verb::auth:
        open = co_await on_auth(argument);
        break;
      case smtp::verb::mail:
        open = on_mail(argument);
        break;
      case smtp::verb::rcpt:
        on_rcpt(argument);
        break;
      case smtp::verb::data:
        open = co_await on_data();
        break;
      case smtp::verb::rset:
        reset_transaction();
        respond("250 2.1.5 Flushed fake - gsmtp\r\n");
        break;
      case smtp::verb::noop:
        respond("250 2.0.0 OK fake - gsmtp\r\n");
        break;
      case smtp::verb::quit:
        respond("221 2.0.0 closing connection fake - gsmtp\r\n");
        open = false;
        break;
      default:
        respond("502 5.5.1 Unrecognized command. fake - gsmtp\r\n");
        break;
    }
    co_return open;
  }

  asio::awaitable<bool> on_starttls() {
    const auto s = server_.get();
    if (tls_ || !s.offer_starttls || server_.mode_ != fake_gmail::mode::starttls) {
      respond("502 5.5.1 Unrecognized command. fake - gsmtp\r\n");
      co_return true;
    }
    respond("220 2.0.0 Ready to start TLS\r\n");
    respond(s.inject_after_starttls);
    const bool flushed = co_await flush();
    if (!flushed) co_return false;
    in_.clear();  // RFC 3207 §4.2: nothing from before the handshake counts
    greeted_ = false;
    const bool ok = co_await handshake();
    co_return ok;
  }

  // "user=" USER ^A "auth=Bearer " TOKEN ^A ^A; false when malformed.
  static bool parse_xoauth2(std::string_view initial, std::string& user, std::string& token) {
    const auto decoded = oauth_relay::base64_decode(initial);
    if (!decoded) return false;
    const std::string& d = *decoded;
    const auto first = d.find('\x01');
    constexpr std::string_view bearer = "auth=Bearer ";
    if (!d.starts_with("user=") || first == std::string::npos || !d.ends_with("\x01\x01") ||
        d.compare(first + 1, bearer.size(), bearer) != 0) {
      return false;
    }
    user = d.substr(5, first - 5);
    const auto token_start = first + 1 + bearer.size();
    if (d.size() < token_start + 2) return false;
    token = d.substr(token_start, d.size() - 2 - token_start);
    return !user.empty() && !token.empty() && token.find('\x01') == std::string::npos;
  }

  asio::awaitable<bool> on_auth(const std::string& argument) {
    ++server_.auth_attempts_;
    const auto space = argument.find(' ');
    std::string mechanism = argument.substr(0, space);
    for (char& c : mechanism) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!greeted_) {
      respond("503 5.5.1 EHLO/HELO first. fake - gsmtp\r\n");
      co_return true;
    }
    if (needs_starttls()) {
      respond(starttls_first);
      co_return true;
    }
    if (!user_.empty()) {
      respond("503 5.5.1 Already authenticated. fake - gsmtp\r\n");
      co_return true;
    }
    if (mechanism != "XOAUTH2") {
      respond("504 5.7.4 Unrecognized authentication type. fake - gsmtp\r\n");
      co_return true;
    }
    std::string initial = space == std::string::npos ? "" : argument.substr(space + 1);
    if (initial.empty()) {
      respond("334 \r\n");
      const bool flushed = co_await flush();
      if (!flushed) co_return false;
      auto response = co_await read_line();
      if (!response) co_return false;
      initial = *response;
    }
    std::string user;
    std::string token;
    const bool good = parse_xoauth2(initial, user, token);
    bool forced_failure = false;
    server_.change([&](auto& s) { forced_failure = take_one(s.reject_auth); });
    const auto validator = server_.get().validator;
    if (good && !forced_failure && (!validator || validator(user, token))) {
      if (!user_.empty()) server_.count_login(user_, -1);  // a second AUTH replaces the first
      user_ = user;
      server_.count_login(user_, +1);
      ++server_.logins_;
      respond("235 2.7.0 Accepted\r\n");
      co_return true;
    }
    if (const auto direct = server_.get().auth_failure_reply; !direct.empty()) {
      ++server_.auth_failures_;
      respond(direct);
      co_return true;
    }
    // Gmail's dance: a JSON error as a challenge, then 535 after any answer.
    respond(auth_challenge);
    const bool flushed = co_await flush();
    if (!flushed) co_return false;
    auto answer = co_await read_line();
    if (!answer) co_return false;
    server_.record_command(answer->empty() ? "" : "<non-empty answer to the AUTH challenge>");
    ++server_.auth_failures_;
    respond(auth_rejected);
    co_return true;
  }

  // False when the connection is to end.
  bool on_mail(const std::string& argument) {
    auto answer = [this](std::string_view text, bool keep_open = true) {
      respond(text);
      return keep_open;
    };
    if (!greeted_) return answer("503 5.5.1 EHLO/HELO first. fake - gsmtp\r\n");
    if (needs_starttls()) return answer(starttls_first);
    if (user_.empty()) return answer(auth_required);
    if (in_transaction_) return answer("503 5.5.1 Nested MAIL command. fake - gsmtp\r\n");
    bool throttled = false;
    bool over = false;
    server_.change([&](auto& s) {
      throttled = take_one(s.throttle_mail);
      if (!throttled && s.throttle_probability > 0) {
        throttled =
            std::uniform_real_distribution<double>(0, 1)(s.throttle_draws) < s.throttle_probability;
      }
      if (throttled) ++s.throttled;
      over = s.daily_limit > 0 && s.accepted_today >= s.daily_limit;
    });
    if (throttled) return answer(try_again_later, false);
    if (over) return answer(daily_limit_exceeded);
    auto parsed = smtp::parse_mail_from(argument);
    if (auto* error = std::get_if<smtp::reply>(&parsed)) return answer(error->wire());
    auto& mail = std::get<smtp::mail_from>(parsed);
    if (mail.params.size && *mail.params.size > 35882577) {
      return answer(
          "552 5.3.4 Your message exceeded Google's message size limits. fake - gsmtp\r\n");
    }
    reset_transaction();
    in_transaction_ = true;
    smtputf8_ = mail.params.smtputf8;
    current_.user = user_;
    current_.sender = mail.address;
    current_.mail_command = "MAIL FROM:" + argument;
    mail_read_ = reads_;
    open_transaction();
    respond("250 2.1.0 OK fake - gsmtp\r\n");
    return true;
  }

  void on_rcpt(const std::string& argument) {
    if (!in_transaction_) return respond("503 5.5.1 MAIL first. fake - gsmtp\r\n");
    current_.rcpt_commands.push_back("RCPT TO:" + argument);
    auto parsed = smtp::parse_rcpt_to(argument, smtputf8_);
    if (auto* error = std::get_if<smtp::reply>(&parsed)) return respond(error->wire());
    const auto& rcpt = std::get<smtp::rcpt_to>(parsed);
    if (server_.get().rejected_recipients.count(rcpt.address) > 0) return respond(no_such_user);
    current_.recipients.push_back(rcpt.address);
    respond("250 2.1.5 OK fake - gsmtp\r\n");
  }

  asio::awaitable<bool> on_data() {
    if (!in_transaction_) {
      respond("503 5.5.1 MAIL first. fake - gsmtp\r\n");
      co_return true;
    }
    if (current_.recipients.empty()) {
      respond("503 5.5.1 RCPT first. fake - gsmtp\r\n");
      co_return true;
    }
    current_.pipelined = mail_read_ == reads_;
    respond("354 Go ahead fake - gsmtp\r\n");
    const bool flushed = co_await flush();
    if (!flushed) co_return false;
    smtp::data_decoder decoder(max_line);
    for (;;) {
      const auto step = decoder.feed(in_, current_.content);
      in_.erase(0, step.consumed);
      if (step.done) break;
      const bool more = co_await read_more();
      if (!more) co_return false;
    }
    bool drop = false;
    bool fail = false;
    bool denied = false;
    server_.change([&](auto& s) {
      drop = take_one(s.drop_after_data);
      if (!drop) fail = take_one(s.fail_data_451);
      denied = current_.sender != current_.user && s.send_as_denied.count(current_.sender) > 0;
    });
    message m = std::move(current_);
    reset_transaction();
    if (drop) {
      boost::system::error_code ignored;
      stream_.lowest_layer().close(ignored);
      co_return false;
    }
    if (fail) {
      respond(data_451);
      co_return true;
    }
    if (denied) {
      // Exchange Online's answer, as it gives it after the content.
      respond("554 5.2.252 SendAsDenied; " + m.user + " not allowed to send as " + m.sender +
              "; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied; "
              "Failed to process message due to a permanent exception with message "
              "[BeginDiagnosticData]"
              "Cannot submit message.[EndDiagnosticData] [Hostname=fake.outlook]\r\n");
      co_return true;
    }
    server_.change([](auto& s) { ++s.accepted_today; });
    server_.record_message(std::move(m));
    respond("250 2.0.0 OK  1700000000 fake - gsmtp\r\n");
    co_return true;
  }

  fake_gmail::impl& server_;
  asio::ssl::stream<asio::ip::tcp::socket> stream_;
  asio::steady_timer timer_;
  std::array<char, 16 * 1024> buffer_{};
  bool tls_ = false;
  bool greeted_ = false;
  std::string user_;
  std::string in_;
  std::string out_;
  std::uint64_t reads_ = 0;      // read calls so far, to tell what came together
  std::uint64_t mail_read_ = 0;  // `reads_` when MAIL was taken
  bool in_transaction_ = false;
  bool counted_ = false;  // in transactions_open_
  bool smtputf8_ = false;
  message current_;
};

asio::awaitable<void> fake_gmail::impl::run_session(std::shared_ptr<session> s) {
  co_await s->run();
}

asio::awaitable<void> fake_gmail::impl::accept_loop() {
  for (;;) {
    auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
    ++connections_;
    // As Google's servers do: replies are not held back waiting for ACKs.
    boost::system::error_code ignored;
    socket.set_option(asio::ip::tcp::no_delay(true), ignored);
    asio::co_spawn(ioc_, run_session(std::make_shared<session>(*this, std::move(socket))),
                   asio::detached);
  }
}

fake_gmail::fake_gmail(mode m, pem_pair certificate, std::uint16_t port)
    : impl_(std::make_shared<impl>(m, certificate, port)) {
  impl_->start();
}

fake_gmail::~fake_gmail() {
  stop();
}

std::uint16_t fake_gmail::port() const {
  return impl_->port_;
}

void fake_gmail::stop() {
  impl_->stop();
}

void fake_gmail::set_auth_failure_reply(std::string reply) {
  impl_->change([&](auto& s) { s.auth_failure_reply = std::move(reply); });
}

void fake_gmail::set_token_validator(token_validator validator) {
  impl_->change([&](auto& s) { s.validator = std::move(validator); });
}
void fake_gmail::greet_421(int n) {
  impl_->change([&](auto& s) { s.greet_421 = n; });
}
void fake_gmail::fail_data_451(int n) {
  impl_->change([&](auto& s) { s.fail_data_451 = n; });
}
void fake_gmail::drop_after_data(int n) {
  impl_->change([&](auto& s) { s.drop_after_data = n; });
}
void fake_gmail::daily_limit(std::size_t n) {
  impl_->change([&](auto& s) {
    s.daily_limit = n;
    s.accepted_today = 0;
  });
}
void fake_gmail::throttle_mail_421(int n) {
  impl_->change([&](auto& s) { s.throttle_mail = n; });
}
void fake_gmail::throttle_mail_421_at_random(double p, unsigned seed) {
  impl_->change([&](auto& s) {
    s.throttle_probability = p;
    s.throttle_draws.seed(seed);
  });
}
std::size_t fake_gmail::throttled_mails() const {
  std::size_t n = 0;
  impl_->change([&](auto& s) { n = s.throttled; });
  return n;
}
void fake_gmail::deny_send_as(std::string sender) {
  impl_->change([&](auto& s) { s.send_as_denied.insert(std::move(sender)); });
}
void fake_gmail::reject_recipient(std::string address) {
  impl_->change([&](auto& s) { s.rejected_recipients.insert(std::move(address)); });
}
void fake_gmail::set_reply_delay(std::chrono::milliseconds delay) {
  impl_->change([&](auto& s) { s.reply_delay = delay; });
}
void fake_gmail::set_offer_starttls(bool offer) {
  impl_->change([&](auto& s) { s.offer_starttls = offer; });
}
void fake_gmail::reject_auth(int n) {
  impl_->change([&](auto& s) { s.reject_auth = n; });
}
void fake_gmail::set_offer_pipelining(bool offer) {
  impl_->change([&](auto& s) { s.offer_pipelining = offer; });
}
void fake_gmail::set_offer_smtputf8(bool offer) {
  impl_->change([&](auto& s) { s.offer_smtputf8 = offer; });
}
void fake_gmail::set_offer_dsn(bool offer) {
  impl_->change([&](auto& s) { s.offer_dsn = offer; });
}
void fake_gmail::inject_after_starttls(std::string bytes) {
  impl_->change([&](auto& s) { s.inject_after_starttls = std::move(bytes); });
}

std::vector<fake_gmail::message> fake_gmail::messages() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->messages_;
}

bool fake_gmail::wait_for_messages(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mutex_);
  return impl_->delivered_.wait_for(lock, timeout, [&] { return impl_->messages_.size() >= n; });
}

std::size_t fake_gmail::message_count() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->messages_.size();
}

std::vector<std::string> fake_gmail::commands() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->commands_;
}

std::size_t fake_gmail::connections() const {
  return impl_->connections_;
}
std::size_t fake_gmail::tls_handshakes() const {
  return impl_->tls_handshakes_;
}
std::size_t fake_gmail::auth_attempts() const {
  return impl_->auth_attempts_;
}
std::map<std::string, std::size_t> fake_gmail::peak_logins_per_user() const {
  std::lock_guard lock(impl_->logins_mutex_);
  return impl_->peak_logins_;
}
std::size_t fake_gmail::logins() const {
  return impl_->logins_;
}
std::size_t fake_gmail::auth_failures() const {
  return impl_->auth_failures_;
}
std::size_t fake_gmail::transactions_open() const {
  return impl_->transactions_open_;
}

}  // namespace oauth_relay::fakes
