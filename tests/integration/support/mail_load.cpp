// Client threads of the mail load: connect, send a few messages, start over;
// a daemon that vanishes only costs a reconnect.
#include "integration/support/mail_load.hpp"

#include <chrono>
#include <exception>
#include <random>

#include "integration/support/google_fakes.hpp"
#include "integration/support/smtp_client.hpp"

namespace oauth_relay::test_support {

using namespace std::chrono_literals;

mail_load::mail_load(mail_load_options options, std::function<std::uint16_t()> port)
    : options_(std::move(options)), port_(std::move(port)) {
  for (int s = 0; s < options_.sessions; ++s) threads_.emplace_back([this, s] { run_session(s); });
}

mail_load::~mail_load() {
  stop();
}

void mail_load::stop() {
  stopping_ = true;
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

bool mail_load::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (accepted_ < options_.target) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::map<std::string, mail_load::record> mail_load::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

void mail_load::note(const std::string& tag, record r) {
  std::lock_guard lock(mutex_);
  records_[tag] = r;
}

void mail_load::run_session(int session) {
  std::minstd_rand random(static_cast<std::minstd_rand::result_type>(session + 1));
  std::size_t sequence = 0;
  auto more = [&] { return !stopping_ && accepted_ < options_.target; };
  while (more()) {
    std::string in_flight;  // the tag whose content is being sent
    std::size_t in_flight_size = 0;
    try {
      smtp_client client(port_());
      if (client.read_reply().code != 220 || client.command("EHLO load.test").code != 250) {
        throw std::runtime_error("no greeting");
      }
      const int count = 1 + static_cast<int>(random() % options_.max_per_connection);
      for (int i = 0; i < count && more(); ++i) {
        const std::string tag =
            options_.prefix + "-" + std::to_string(session) + "-" + std::to_string(sequence++);
        const bool large = options_.large_every > 0 && sequence % options_.large_every == 0;
        const std::size_t size = large ? options_.large_size : options_.size;
        const auto message = make_test_message(tag, size);
        if (client.command("MAIL FROM:<" + std::string(google_fakes::account) + ">").code != 250 ||
            client.command("RCPT TO:<rcpt@example.org>").code != 250 ||
            client.command("DATA").code != 354) {
          throw std::runtime_error("transaction refused");
        }
        in_flight = tag;
        in_flight_size = size;
        client.send(message.stuffed());
        client.send(".\r\n");
        const auto reply = client.read_reply(30s);
        in_flight.clear();
        if (reply.code == 0) {
          note(tag, {outcome::unknown, 0, size});
          throw std::runtime_error("no reply to the end of data");
        }
        if (reply.code == 250) {
          note(tag, {outcome::accepted, 250, size});
          ++accepted_;
        } else {
          note(tag, {outcome::refused, reply.code, size});
        }
      }
      client.command("QUIT");
    } catch (const std::exception&) {
      if (!in_flight.empty()) note(in_flight, {outcome::unknown, 0, in_flight_size});
      ++connection_failures_;
      std::this_thread::sleep_for(5ms);  // the daemon is restarting
    }
  }
}

}  // namespace oauth_relay::test_support
