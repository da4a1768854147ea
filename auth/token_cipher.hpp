// AES-256-GCM for the OAuth tokens kept in queue.db: each value sealed with a
// fresh nonce and bound to its account and column, so it cannot be moved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace oauth_relay::auth {

// AES-256: the key is 32 bytes.
inline constexpr std::size_t token_key_size = 32;

// The column a sealed value belongs to; part of what it is bound to.
enum class token_field { refresh, access };

// OpenSSL failed to encrypt (it does not, short of running out of memory or
// randomness); the value was not stored.
class token_cipher_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Stored format, version 1 (NIST SP 800-38D):
//   0x01 | nonce (12 random bytes) | ciphertext | tag (16 bytes)
// The associated data is a label naming the format and the column, and the
// account's address in lower case (the table compares addresses without
// case), so a value copied to another row or column fails to open. Random
// 96-bit nonces stay far below SP 800-38D §8.3's 2^32 encryptions per key:
// an account stores a few tokens an hour.
class token_cipher {
 public:
  // `key`: token_key_size bytes (checked by whoever reads it; throws
  // std::invalid_argument otherwise). `origin` names where it came from for
  // error messages: "the token key file PATH" or "the systemd credential ...".
  token_cipher(std::string_view key, std::string origin);
  ~token_cipher();  // wipes the key
  token_cipher(token_cipher&& other) noexcept;
  token_cipher& operator=(token_cipher&& other) noexcept;
  token_cipher(const token_cipher&) = delete;
  token_cipher& operator=(const token_cipher&) = delete;

  // `plain` sealed for `address`'s `field`. Throws token_cipher_error.
  std::string seal(std::string_view address, token_field field, std::string_view plain) const;
  // The plain value, or nothing when `sealed` was not sealed with this key
  // for this address and field (a wrong key, a value moved or altered, or
  // not this format). The caller wipes what it gets.
  std::optional<std::string> open(std::string_view address, token_field field,
                                  std::string_view sealed) const;

  // A value sealed under a label of its own: the database keeps one, so a
  // key that is not the one its tokens were sealed with is found at start,
  // before any account is read. Throws token_cipher_error.
  std::string make_key_check() const;
  bool matches_key_check(std::string_view check) const;

  const std::string& origin() const { return origin_; }

 private:
  std::string seal_with(std::string_view associated, std::string_view plain) const;
  std::optional<std::string> open_with(std::string_view associated, std::string_view sealed) const;

  unsigned char key_[token_key_size] = {};
  std::string origin_;
};

}  // namespace oauth_relay::auth
