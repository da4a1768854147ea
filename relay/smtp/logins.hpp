// clients.logins_file: the names and password hashes SMTP AUTH checks
// against, one "name:HASH" a line, HASH from crypt(3) (yescrypt as Debian's
// /etc/shadow, or SHA-512-crypt). Read at start, --check-config and SIGHUP;
// written by oauth-relayctl login. Checking a password is crypt_r(3), slow on
// purpose, so the daemon runs it on its blocking pool (password_checker).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace oauth_relay::relay {

// The file is a handful of lines; anything this big is not one.
inline constexpr std::size_t max_logins_file_size = 1024 * 1024;

struct login_entry {
  std::string name;
  std::string hash;
};

// One line of the file as written, so that oauth-relayctl can change one
// entry and keep every other line (comments included) as it was.
struct logins_line {
  std::string text;                  // without its newline
  std::optional<login_entry> entry;  // nothing for a comment or a blank line
};

struct parsed_logins {
  std::vector<logins_line> lines;
  std::vector<std::string> errors;  // "FILE:LINE: message", never quoting a hash
};

// The lines of a logins file; `file` is what errors call it.
parsed_logins parse_logins(std::string_view text, const std::string& file);

// "" when crypt(3) can check `hash` and it is yescrypt ($y$) or
// SHA-512-crypt ($6$); otherwise why not.
std::string hash_problem(std::string_view hash);

// A new yescrypt hash of `password` (crypt_gensalt's default cost); nothing
// when the system's crypt cannot make one.
std::optional<std::string> hash_password(const secret& password);

// The loaded file: who may log in. Immutable, shared by the sessions and the
// checks in flight; a reload makes a new one.
class login_table {
 public:
  struct loaded {
    std::shared_ptr<const login_table> table;  // set when errors is empty
    std::vector<std::string> errors;
  };
  // Reads and checks `path`: a regular file no other user can read or write
  // (the hashes would be open to offline guessing), at most
  // max_logins_file_size, every line valid.
  static loaded load(const std::filesystem::path& path);
  explicit login_table(std::vector<login_entry> entries);

  std::size_t size() const { return entries_.size(); }
  // Whether `password` is `name`'s. Blocking (crypt_r, tens of milliseconds);
  // an unknown name costs the same as a known one, and the hashes are
  // compared in constant time.
  bool verify(std::string_view name, const secret& password) const;

 private:
  std::vector<login_entry> entries_;
  // Hashed when the name is unknown, so its timing does not tell which names exist.
  std::string dummy_hash_;
};

}  // namespace oauth_relay::relay
