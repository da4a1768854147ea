// A string that holds a secret (a password on its way to crypt(3)): wiped when
// it goes, and moved by copying and wiping, so no stray copy stays in freed
// memory. explicit_bzero(3) is libc's wipe the compiler may not drop.
#pragma once

#include <string.h>

#include <string>
#include <string_view>

namespace oauth_relay {

class secret {
 public:
  secret() = default;
  explicit secret(std::string_view text) : value_(text) {}
  secret(const secret&) = delete;
  secret& operator=(const secret&) = delete;
  // std::string's own move would leave short strings' bytes behind in `other`.
  secret(secret&& other) noexcept : value_(other.value_) { other.wipe(); }
  secret& operator=(secret&& other) noexcept {
    if (this != &other) {
      wipe();
      value_ = other.value_;
      other.wipe();
    }
    return *this;
  }
  ~secret() { wipe(); }

  const std::string& value() const { return value_; }
  const char* c_str() const { return value_.c_str(); }
  bool empty() const { return value_.empty(); }
  std::size_t size() const { return value_.size(); }

  void wipe() {
    ::explicit_bzero(value_.data(), value_.size());
    value_.clear();
  }

 private:
  std::string value_;
};

// Wipes a buffer that held a secret (a decoded AUTH response, a command line).
inline void wipe(std::string& text) {
  ::explicit_bzero(text.data(), text.size());
  text.clear();
}

}  // namespace oauth_relay
