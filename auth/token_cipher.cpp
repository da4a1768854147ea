// OpenSSL's EVP AEAD interface with AES-256-GCM. Every failure to open is the
// same answer (nothing), so the caller cannot be made to tell a wrong key from
// a forged tag; only the key check at start says which it is.
#include "auth/token_cipher.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

#include "common/secret.hpp"

namespace oauth_relay::auth {
namespace {

using namespace std::string_view_literals;

constexpr unsigned char format_v1 = 0x01;
constexpr std::size_t nonce_size = 12;  // SP 800-38D §8.2: 96-bit IVs
constexpr std::size_t tag_size = 16;    // the full 128-bit tag
constexpr std::size_t overhead = 1 + nonce_size + tag_size;

// What a sealed value is bound to besides the key. The NUL bytes keep label
// and address apart whatever the address holds.
constexpr auto refresh_label = "oauth-relay token v1\0refresh_token\0"sv;
constexpr auto access_label = "oauth-relay token v1\0access_token\0"sv;
constexpr auto key_check_label = "oauth-relay key check v1"sv;
constexpr auto key_check_text = "oauth-relay token key"sv;

struct ctx_free {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using cipher_ctx = std::unique_ptr<EVP_CIPHER_CTX, ctx_free>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* bytes(std::string& s, std::size_t at) {
  return reinterpret_cast<unsigned char*>(s.data()) + at;
}
int length(std::size_t n) {
  return static_cast<int>(n);
}

// The label, then the address in ASCII lower case as SQLite's NOCASE compares it.
std::string associated_data(std::string_view address, token_field field) {
  std::string out(field == token_field::refresh ? refresh_label : access_label);
  for (char c : address) out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  return out;
}

}  // namespace

token_cipher::token_cipher(std::string_view key, std::string origin) : origin_(std::move(origin)) {
  if (key.size() != token_key_size) throw std::invalid_argument("token key: not 32 bytes");
  std::memcpy(key_, key.data(), token_key_size);
}

token_cipher::~token_cipher() {
  OPENSSL_cleanse(key_, sizeof key_);
}

token_cipher::token_cipher(token_cipher&& other) noexcept : origin_(std::move(other.origin_)) {
  std::memcpy(key_, other.key_, sizeof key_);
  OPENSSL_cleanse(other.key_, sizeof other.key_);
}

token_cipher& token_cipher::operator=(token_cipher&& other) noexcept {
  if (this != &other) {
    std::memcpy(key_, other.key_, sizeof key_);
    OPENSSL_cleanse(other.key_, sizeof other.key_);
    origin_ = std::move(other.origin_);
  }
  return *this;
}

std::string token_cipher::seal(std::string_view address, token_field field,
                               std::string_view plain) const {
  return seal_with(associated_data(address, field), plain);
}

std::optional<std::string> token_cipher::open(std::string_view address, token_field field,
                                              std::string_view sealed) const {
  return open_with(associated_data(address, field), sealed);
}

std::string token_cipher::make_key_check() const {
  return seal_with(key_check_label, key_check_text);
}

bool token_cipher::matches_key_check(std::string_view check) const {
  auto text = open_with(key_check_label, check);
  return text && *text == key_check_text;
}

std::string token_cipher::seal_with(std::string_view associated, std::string_view plain) const {
  std::string out(overhead + plain.size(), '\0');
  out[0] = static_cast<char>(format_v1);
  unsigned char* nonce = bytes(out, 1);
  unsigned char* body = bytes(out, 1 + nonce_size);
  if (RAND_bytes(nonce, length(nonce_size)) != 1) {
    throw token_cipher_error("token encryption: no random bytes for the nonce");
  }
  cipher_ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0, tail = 0;
  const bool ok =
      ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &n, bytes(associated), length(associated.size())) ==
          1 &&
      (plain.empty() ||
       EVP_EncryptUpdate(ctx.get(), body, &n, bytes(plain), length(plain.size())) == 1) &&
      EVP_EncryptFinal_ex(ctx.get(), body + (plain.empty() ? 0 : n), &tail) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, length(tag_size), body + plain.size()) ==
          1;
  if (!ok) throw token_cipher_error("token encryption failed (OpenSSL)");
  return out;
}

std::optional<std::string> token_cipher::open_with(std::string_view associated,
                                                   std::string_view sealed) const {
  if (sealed.size() < overhead || static_cast<unsigned char>(sealed[0]) != format_v1) {
    return std::nullopt;
  }
  const auto* nonce = bytes(sealed) + 1;
  const auto* body = nonce + nonce_size;
  const std::size_t body_size = sealed.size() - overhead;
  // Copied: EVP_CTRL_GCM_SET_TAG takes a non-const pointer.
  unsigned char tag[tag_size];
  std::memcpy(tag, body + body_size, tag_size);
  std::string plain(body_size, '\0');
  cipher_ctx ctx(EVP_CIPHER_CTX_new());
  int n = 0, tail = 0;
  const bool ok =
      ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &n, bytes(associated), length(associated.size())) ==
          1 &&
      (body_size == 0 ||
       EVP_DecryptUpdate(ctx.get(), bytes(plain, 0), &n, body, length(body_size)) == 1) &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, length(tag_size), tag) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), bytes(plain, 0) + (body_size == 0 ? 0 : n), &tail) == 1;
  if (!ok) {
    // GCM decrypts before it checks: what came out of a forged value is wiped unread.
    wipe(plain);
    return std::nullopt;
  }
  return plain;
}

}  // namespace oauth_relay::auth
