// The key the stored OAuth tokens are sealed with: the systemd credential
// `token-key` when the service has one, else the file `secrets.key_file`.
#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>

#include "auth/token_cipher.hpp"
#include "config/config.hpp"

namespace oauth_relay::auth {

// The key cannot be had, or is not the one the database's tokens were sealed
// with. `what()` is one line naming the file; `fix()` says what to do.
class token_key_error : public std::runtime_error {
 public:
  token_key_error(const std::string& cause, std::string fix)
      : std::runtime_error(cause), fix_(std::move(fix)) {}
  const std::string& fix() const { return fix_; }

 private:
  std::string fix_;
};

// What to do when there is no credential and the key file does not exist.
enum class when_missing {
  create,     // the database never had a key: make one (oauth-relayd's first start)
  fail,       // say how to create it (oauth-relayctl, which never creates it as root)
  fail_lost,  // the database's tokens were sealed with a key: say to restore it
};

// A key file holds the 32 bytes in base64 (44 characters, a trailing newline
// allowed): text survives a copy into a password manager or a configuration
// management vault, and `head -c 32 /dev/urandom | base64` makes one.
// It must be a regular file that neither group nor others may access (0400).
// A created one is 0400, owned by the user that creates it.
token_cipher load_token_cipher(const config::secrets_settings& secrets, when_missing missing);

// The key of a file alone, without looking for the credential (tests, and
// tools that name the file).
token_cipher load_token_key_file(const std::filesystem::path& file, when_missing missing);

// Whether oauth-relay may make a key when there is none.
enum class key_creation {
  allowed,  // oauth-relayd: on a database that never had a key
  never,    // oauth-relayctl: it may run as root, and the daemon must own the key
};

// The key for settings.state_dir's database: from the credential or the key
// file, checked against the database's key check before anything opens the
// database for writing, so a wrong key changes nothing. With
// key_creation::allowed, a missing key file is created when the database
// holds no key check. Throws token_key_error.
token_cipher token_cipher_for(const config::settings& settings, key_creation creation);

// "KEY is not the key the tokens in DATABASE were sealed with", and what to do.
token_key_error key_mismatch(const token_cipher& cipher, const std::filesystem::path& database);

// The command that makes a key file, for messages and documentation.
std::string key_file_command(const std::filesystem::path& file);

}  // namespace oauth_relay::auth
