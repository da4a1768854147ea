// Secrets in memory: wiping a buffer that held a token, key or client secret
// once it is no longer needed, and keeping the process out of core dumps.
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace oauth_relay {

// Overwrites the whole buffer of `s` (its capacity, not just its size) in a
// way the compiler may not optimise away, then empties it. What a token or
// key leaves in freed heap memory can otherwise turn up in a core dump, a
// swapped page or the next allocation.
void wipe(std::string& s) noexcept;

// Wipes a string when the scope ends, however it ends: for a temporary that
// holds a secret (an XOAUTH2 response, a request body, a decrypted token).
class wipe_on_exit {
 public:
  explicit wipe_on_exit(std::string& s) : s_(s) {}
  ~wipe_on_exit() { wipe(s_); }
  wipe_on_exit(const wipe_on_exit&) = delete;
  wipe_on_exit& operator=(const wipe_on_exit&) = delete;

 private:
  std::string& s_;
};

// A std::string for a secret kept in a struct (a token, the client secret):
// its buffer is wiped when the value is destroyed or replaced. Only what the
// string itself owns: a copy made into a plain std::string is that copy's
// owner's to wipe, and growing one in place may leave the old buffer behind.
class secret_string : public std::string {
 public:
  secret_string() = default;
  secret_string(std::string s) noexcept : std::string(std::move(s)) {}
  secret_string(std::string_view s) : std::string(s) {}
  secret_string(const char* s) : std::string(s) {}
  secret_string(const secret_string&) = default;
  secret_string(secret_string&&) noexcept = default;
  ~secret_string() { wipe(*this); }

  secret_string& operator=(const secret_string& other) {
    if (this != &other) replace_with(other);
    return *this;
  }
  secret_string& operator=(secret_string&& other) noexcept {
    if (this != &other) {
      wipe(*this);
      std::string::operator=(std::move(other));
    }
    return *this;
  }
  secret_string& operator=(std::string other) noexcept {
    wipe(*this);
    std::string::operator=(std::move(other));
    return *this;
  }
  secret_string& operator=(std::string_view other) {
    replace_with(other);
    return *this;
  }
  secret_string& operator=(const char* other) { return *this = std::string_view(other); }

 private:
  void replace_with(std::string_view other) {
    wipe(*this);
    assign(other);
  }
};

// A password on its way to crypt(3): move-only, so no stray copy exists, and
// moved by copying and wiping (std::string's own move would leave a short
// string's bytes behind in the moved-from object).
class secret {
 public:
  secret() = default;
  explicit secret(std::string_view text) : value_(text) {}
  secret(const secret&) = delete;
  secret& operator=(const secret&) = delete;
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

  void wipe() { oauth_relay::wipe(value_); }

 private:
  std::string value_;
};

// No core dump of this process may hold its secrets: the core size limit
// becomes 0 (RLIMIT_CORE, soft and hard) and the process is not dumpable
// (PR_SET_DUMPABLE 0, which also keeps other processes of the same user from
// ptrace-attaching or reading /proc/PID/mem). Returns an error text, empty on
// success.
std::string disable_core_dumps();

}  // namespace oauth_relay
