// AES-256-GCM sealing of the tokens: round trips, a fresh nonce per seal, and
// every way a sealed value can be wrong (key, nonce, ciphertext, tag, format,
// account, column) failing the same clean way.
#include "auth/token_cipher.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace oauth_relay::auth {
namespace {

const std::string key_a(token_key_size, 'a');
const std::string key_b(token_key_size, 'b');
constexpr const char* alice = "alice@example.com";
constexpr const char* token = "1//0gRefreshTokenOfAlice-abcdefghijklmnopqrstuvwxyz";

// Byte offsets in the stored format: version, nonce, ciphertext, tag.
constexpr std::size_t nonce_at = 1, body_at = 13, tag_size = 16;

TEST(token_cipher, a_sealed_token_opens_with_the_same_key_account_and_field) {
  token_cipher cipher(key_a, "key a");
  const auto sealed = cipher.seal(alice, token_field::refresh, token);
  EXPECT_EQ(sealed.size(), 1 + 12 + std::string(token).size() + tag_size);
  EXPECT_EQ(sealed[0], '\x01');
  EXPECT_EQ(sealed.find(token), std::string::npos);
  EXPECT_EQ(cipher.open(alice, token_field::refresh, sealed), token);
  // The table compares addresses without case, and so does the binding.
  EXPECT_EQ(cipher.open("Alice@Example.COM", token_field::refresh, sealed), token);
  EXPECT_EQ(cipher.open(alice, token_field::access, cipher.seal(alice, token_field::access, "")),
            "");
}

TEST(token_cipher, every_seal_has_its_own_nonce) {
  token_cipher cipher(key_a, "key a");
  std::set<std::string> nonces, values;
  for (int i = 0; i < 100; ++i) {
    const auto sealed = cipher.seal(alice, token_field::access, "ya29.same");
    nonces.insert(sealed.substr(nonce_at, 12));
    values.insert(sealed);
  }
  EXPECT_EQ(nonces.size(), 100u);
  EXPECT_EQ(values.size(), 100u);
}

TEST(token_cipher, another_key_opens_nothing) {
  const auto sealed = token_cipher(key_a, "key a").seal(alice, token_field::refresh, token);
  EXPECT_EQ(token_cipher(key_b, "key b").open(alice, token_field::refresh, sealed), std::nullopt);
}

TEST(token_cipher, a_value_moved_to_another_account_or_column_opens_nothing) {
  token_cipher cipher(key_a, "key a");
  const auto sealed = cipher.seal(alice, token_field::refresh, token);
  EXPECT_EQ(cipher.open("bob@example.com", token_field::refresh, sealed), std::nullopt);
  EXPECT_EQ(cipher.open(alice, token_field::access, sealed), std::nullopt);
  EXPECT_EQ(cipher.open("alice@example.co", token_field::refresh, sealed), std::nullopt);
}

TEST(token_cipher, any_altered_byte_opens_nothing) {
  token_cipher cipher(key_a, "key a");
  const auto sealed = cipher.seal(alice, token_field::refresh, token);
  // The version, a nonce byte, a ciphertext byte, the first and last tag byte.
  for (std::size_t at : {std::size_t{0}, nonce_at, nonce_at + 11, body_at, body_at + 5,
                         sealed.size() - tag_size, sealed.size() - 1}) {
    std::string altered = sealed;
    altered[at] = static_cast<char>(altered[at] ^ 0x01);
    EXPECT_EQ(cipher.open(alice, token_field::refresh, altered), std::nullopt) << "byte " << at;
  }
}

TEST(token_cipher, short_or_foreign_values_open_nothing) {
  token_cipher cipher(key_a, "key a");
  const auto sealed = cipher.seal(alice, token_field::refresh, token);
  EXPECT_EQ(cipher.open(alice, token_field::refresh, ""), std::nullopt);
  EXPECT_EQ(cipher.open(alice, token_field::refresh, sealed.substr(0, 28)), std::nullopt);
  EXPECT_EQ(cipher.open(alice, token_field::refresh, sealed.substr(0, sealed.size() - 1)),
            std::nullopt);
  EXPECT_EQ(cipher.open(alice, token_field::refresh, sealed + "x"), std::nullopt);
  EXPECT_EQ(cipher.open(alice, token_field::refresh, token), std::nullopt);  // plain text
}

TEST(token_cipher, the_key_check_tells_keys_apart) {
  token_cipher a(key_a, "key a"), b(key_b, "key b");
  const auto check = a.make_key_check();
  EXPECT_TRUE(a.matches_key_check(check));
  EXPECT_TRUE(token_cipher(key_a, "key a again").matches_key_check(check));
  EXPECT_FALSE(b.matches_key_check(check));
  EXPECT_FALSE(a.matches_key_check(""));
  // A sealed token is no key check, even under the same key.
  EXPECT_FALSE(a.matches_key_check(a.seal("", token_field::refresh, "oauth-relay token key")));
}

TEST(token_cipher, a_moved_cipher_keeps_the_key) {
  token_cipher first(key_a, "key a");
  const auto sealed = first.seal(alice, token_field::access, "ya29.x");
  token_cipher second(std::move(first));
  EXPECT_EQ(second.open(alice, token_field::access, sealed), "ya29.x");
  EXPECT_EQ(second.origin(), "key a");
  token_cipher third(key_b, "key b");
  third = std::move(second);
  EXPECT_EQ(third.open(alice, token_field::access, sealed), "ya29.x");
}

TEST(token_cipher, a_key_of_the_wrong_size_is_refused) {
  EXPECT_THROW(token_cipher(std::string(31, 'a'), "short"), std::invalid_argument);
  EXPECT_THROW(token_cipher(std::string(33, 'a'), "long"), std::invalid_argument);
}

}  // namespace
}  // namespace oauth_relay::auth
