// Shared by the auth tests: a temporary state directory, a fake token
// endpoint with its CA on disk, settings pointing at both, and a token key.
#pragma once

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "auth/token_cipher.hpp"
#include "auth/token_source.hpp"
#include "config/config.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"

namespace oauth_relay::auth::testing_support {

class temp_dir {
 public:
  temp_dir()
      : path_(std::filesystem::temp_directory_path() /
              ("auth-test-" + std::to_string(std::random_device{}()) + "-" +
               std::to_string(std::random_device{}()))) {
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() { std::filesystem::remove_all(path_); }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A fixed key (32 times `fill`): every store a test opens on one database
// must use the same one, as the daemon and oauth-relayctl share the key file.
inline token_cipher test_cipher(char fill = 'k') {
  return token_cipher(std::string(token_key_size, fill), "the test key");
}

// A token endpoint on loopback and the settings that trust it.
struct oauth_env {
  temp_dir dir;
  fakes::test_pki pki;
  fakes::fake_oauth fake{pki};
  std::filesystem::path ca_file = pki.write_ca(dir.path() / "ca.pem");

  config::settings settings() const {
    config::settings s;
    s.state_dir = dir.path() / "state";
    s.oauth.client_id = fake.client_id();
    s.oauth.client_secret = fake.client_secret();
    s.oauth.token_url = fake.token_url();
    s.oauth.auth_url = fake.auth_url();
    s.oauth.ca_file = ca_file;
    config::account_settings alice;
    alice.address = "alice@example.com";
    alice.senders = {"alice@example.com"};
    config::account_settings bob;
    bob.address = "bob@example.com";
    bob.is_default = true;
    s.accounts = {alice, bob};
    return s;
  }
};

// Runs `io` until `done()` or the deadline; false on timeout.
template <typename Predicate>
bool run_until(boost::asio::io_context& io, Predicate done,
               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.restart();
    if (io.run_for(std::chrono::milliseconds(10)) == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  return true;
}

// Asks `tokens` for `account`'s token from a coroutine on `io`, as the
// delivery scheduler does; `done(token_result)` runs there with the answer.
template <typename Done>
void ask(boost::asio::io_context& io, token_source& tokens, std::string account, Done done) {
  boost::asio::co_spawn(
      io,
      [&tokens, account = std::move(account), done = std::move(done)]() mutable
      -> boost::asio::awaitable<void> { done(co_await tokens.get_token(account)); },
      boost::asio::detached);
}

}  // namespace oauth_relay::auth::testing_support
