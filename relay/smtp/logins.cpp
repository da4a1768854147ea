// Reading, checking and using the logins file. crypt_r(3) and
// crypt_gensalt_rn(3) are libxcrypt's; the comparison of the computed hash
// with the stored one is OpenSSL's constant-time CRYPTO_memcmp.
#include "relay/smtp/logins.hpp"

#include <crypt.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/text.hpp"
#include "config/validators.hpp"

namespace oauth_relay::relay {
namespace {

// The hash after the last '$', in crypt's base64: 256 bits for yescrypt, 512 for SHA-512-crypt.
constexpr std::size_t yescrypt_hash_length = 43;
constexpr std::size_t sha512_hash_length = 86;

std::string octal_mode(mode_t mode) {
  char buffer[8];
  std::snprintf(buffer, sizeof buffer, "%04o", static_cast<unsigned>(mode & 07777));
  return buffer;
}

// crypt_r's scratch space (about 32 KiB): zeroed before use as crypt(3)
// asks, wiped after, since it held the password's derived state.
struct crypt_scratch {
  crypt_scratch() : data(std::make_unique<crypt_data>()) {}
  ~crypt_scratch() { OPENSSL_cleanse(data.get(), sizeof *data); }
  std::unique_ptr<crypt_data> data;
};

// A yescrypt setting (method, cost, salt) from crypt_gensalt_rn(3) with its defaults.
std::optional<std::string> yescrypt_setting() {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!::crypt_gensalt_rn("$y$", 0, nullptr, 0, setting, sizeof setting)) return std::nullopt;
  return std::string(setting);
}

std::optional<std::string> run_crypt(const secret& password, const std::string& setting) {
  crypt_scratch scratch;
  const char* out = ::crypt_r(password.c_str(), setting.c_str(), scratch.data.get());
  // libxcrypt answers a failure with a string starting with '*', never with a hash.
  if (!out || out[0] == '*') return std::nullopt;
  return std::string(out);
}

}  // namespace

std::string hash_problem(std::string_view hash) {
  if (!hash.starts_with("$y$") && !hash.starts_with("$6$")) {
    return "the hash is not yescrypt ($y$) or SHA-512-crypt ($6$)";
  }
  // crypt_checksalt() also takes a bare setting (no hash after the salt),
  // which no password would ever match: the hash part must be there, whole.
  const std::size_t expected = hash.starts_with("$y$") ? yescrypt_hash_length : sha512_hash_length;
  const std::string_view tail = hash.substr(hash.rfind('$') + 1);
  const bool whole = tail.size() == expected && std::all_of(tail.begin(), tail.end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/';
                     });
  const std::string text(hash);
  switch (whole ? ::crypt_checksalt(text.c_str()) : CRYPT_SALT_INVALID) {
    case CRYPT_SALT_OK:
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
      return "";
    default:
      return "the hash is malformed (crypt(3) cannot use it)";
  }
}

parsed_logins parse_logins(std::string_view text, const std::string& file) {
  parsed_logins result;
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const auto newline = text.find('\n');
    std::string_view line = text.substr(0, newline);
    text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
    logins_line out{std::string(line), std::nullopt};
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string_view::npos || line[first] == '#') {
      result.lines.push_back(std::move(out));
      continue;
    }
    const auto error = [&](const std::string& message) {
      result.errors.push_back(file + ":" + std::to_string(number) + ": " + message);
    };
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) {
      error("expected NAME:HASH");
      continue;
    }
    const std::string_view name = line.substr(0, colon);
    const std::string_view hash = line.substr(colon + 1);
    if (!config::is_login_name(name)) {
      error("\"" + escaped(name.substr(0, 80), "\"\\") +
            "\" is not a login name (1 to 64 letters, digits, \".\", \"_\", \"-\", \"@\", \"+\")");
      continue;
    }
    // The hash itself is never quoted: it is as good as the password to an offline guesser.
    if (hash.find_first_of(": \t") != std::string_view::npos) {
      error("login " + std::string(name) + ": expected NAME:HASH and nothing after the hash");
      continue;
    }
    if (const auto problem = hash_problem(hash); !problem.empty()) {
      error("login " + std::string(name) + ": " + problem + "; oauth-relayctl login add " +
            std::string(name) + " makes a new one");
      continue;
    }
    const auto same = std::find_if(result.lines.begin(), result.lines.end(),
                                   [&](const auto& l) { return l.entry && l.entry->name == name; });
    if (same != result.lines.end()) {
      error("login " + std::string(name) + " is listed twice");
      continue;
    }
    out.entry = login_entry{std::string(name), std::string(hash)};
    result.lines.push_back(std::move(out));
  }
  return result;
}

std::optional<std::string> hash_password(const secret& password) {
  const auto setting = yescrypt_setting();
  if (!setting) return std::nullopt;
  return run_crypt(password, *setting);
}

login_table::loaded login_table::load(const std::filesystem::path& path) {
  loaded result;
  const auto fail = [&](const std::string& message) {
    result.errors.push_back(path.string() + ": " + message);
    return result;
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return fail(std::string("cannot read: ") + std::strerror(errno));
  struct stat st {};
  std::string text;
  bool too_big = false;
  int read_error = 0;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO) == 0) {
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) read_error = errno;
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
      if (text.size() > max_logins_file_size) {
        too_big = true;
        break;
      }
    }
  }
  ::close(fd);
  if (!S_ISREG(st.st_mode)) return fail("not a regular file");
  if ((st.st_mode & S_IRWXO) != 0) {
    return fail("other users may read or write it (mode " + octal_mode(st.st_mode) +
                "): the hashes would be open to guessing; run chmod o-rwx " + path.string());
  }
  if (read_error != 0) return fail(std::string("cannot read: ") + std::strerror(read_error));
  if (too_big) return fail("larger than 1 MiB; this is not a logins file");
  auto parsed = parse_logins(text, path.string());
  wipe(text);
  if (!parsed.errors.empty()) {
    result.errors = std::move(parsed.errors);
    return result;
  }
  std::vector<login_entry> entries;
  for (auto& line : parsed.lines) {
    if (line.entry) entries.push_back(std::move(*line.entry));
  }
  result.table = std::make_shared<const login_table>(std::move(entries));
  return result;
}

login_table::login_table(std::vector<login_entry> entries) : entries_(std::move(entries)) {
  // The first entry's hash has the method and cost most entries have; with
  // no entry, a yescrypt setting of the default cost.
  if (!entries_.empty()) {
    dummy_hash_ = entries_.front().hash;
  } else if (auto setting = yescrypt_setting()) {
    dummy_hash_ = *setting;
  }
}

bool login_table::verify(std::string_view name, const secret& password) const {
  const auto it = std::find_if(entries_.begin(), entries_.end(),
                               [&](const login_entry& e) { return e.name == name; });
  const std::string& expected = it != entries_.end() ? it->hash : dummy_hash_;
  if (expected.empty()) return false;
  auto computed = run_crypt(password, expected);
  if (!computed) return false;
  const bool same = computed->size() == expected.size() &&
                    CRYPTO_memcmp(computed->data(), expected.data(), expected.size()) == 0;
  wipe(*computed);
  return same && it != entries_.end();
}

}  // namespace oauth_relay::relay
