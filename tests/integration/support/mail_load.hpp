// Applications sending mail to the relay from several threads, as long as it
// takes to get a number of messages accepted, through restarts and crashes of
// the daemon: every message is named (test_message tags) and what the relay
// answered to it is kept, so a test can check each one against what arrived.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace oauth_relay::test_support {

struct mail_load_options {
  std::string prefix = "m";      // tags are PREFIX-SESSION-SEQUENCE
  int sessions = 4;              // concurrent client connections
  std::size_t target = 300;      // stop once this many got a 250
  std::size_t size = 10 * 1024;  // octets of most messages
  std::size_t large_every = 0;   // every Nth message is large (0: none)
  std::size_t large_size = 300 * 1024;
  int max_per_connection = 10;  // messages per connection: 1 to this, at random
};

class mail_load {
 public:
  enum class outcome {
    accepted,  // 250 after the final dot
    unknown,   // (part of) the content was sent, then no reply: the daemon died
    refused,   // another reply to the final dot
  };
  struct record {
    outcome result = outcome::unknown;
    int code = 0;          // the reply to the final dot
    std::size_t size = 0;  // the size asked of make_test_message
  };

  // Starts the threads at once; `port` says where the relay listens now.
  mail_load(mail_load_options options, std::function<std::uint16_t()> port);
  ~mail_load();  // stops and joins
  mail_load(const mail_load&) = delete;
  mail_load& operator=(const mail_load&) = delete;

  std::size_t accepted() const { return accepted_.load(); }
  // Blocks until the target is reached or `timeout` passes (false then).
  bool wait(std::chrono::milliseconds timeout);
  void stop();
  // Every message whose content was at least partly sent, by tag.
  std::map<std::string, record> records() const;
  std::size_t connection_failures() const { return connection_failures_.load(); }

 private:
  void run_session(int session);
  void note(const std::string& tag, record r);

  mail_load_options options_;
  std::function<std::uint16_t()> port_;
  std::atomic<std::size_t> accepted_{0};
  std::atomic<std::size_t> connection_failures_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mutex_;
  std::map<std::string, record> records_;
  std::vector<std::thread> threads_;
};

}  // namespace oauth_relay::test_support
