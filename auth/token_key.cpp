// Reading, checking and creating the token key. Every refusal names the file
// and the command that fixes it; nothing here ever prints the key.
#include "auth/token_key.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>

#include "auth/token_store.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "config/credentials.hpp"
#include "config/log.hpp"
#include "config/yaml_reader.hpp"

namespace oauth_relay::auth {
namespace {

// A key file is 45 bytes; anything much larger is some other file.
constexpr std::size_t max_key_file = 4096;
constexpr std::string_view white_space = " \t\r\n\f\v";

std::string errno_text(int e) {
  return std::strerror(e);
}

std::string mode_text(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// The key in `text` (base64 of 32 bytes, trailing white space allowed), or nothing.
std::optional<std::string> parse_key(std::string_view text) {
  while (!text.empty() && white_space.find(text.back()) != std::string_view::npos) {
    text.remove_suffix(1);
  }
  auto key = base64_decode(text);
  if (key && key->size() == token_key_size) return key;
  if (key) wipe(*key);
  return std::nullopt;
}

std::string restore_fix(const std::filesystem::path& file) {
  return "restore " + file.string() +
         " from your backup: the tokens in the database were sealed with it (without it every "
         "account must be authorized again; see \"The token key\" in operations.md)";
}

// Reads the whole file into `out` (wiped by the caller); an errno on failure.
int read_all(int fd, std::string& out) {
  out.reserve(max_key_file + 512);  // never reallocated, so no copy is left behind
  char buffer[512];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
    if (out.size() > max_key_file) break;
  }
  ::explicit_bzero(buffer, sizeof buffer);
  return 0;
}

// A new key, written to a private temporary file beside `file` and linked
// into place, so no reader ever sees a partial key and an existing file is
// never replaced. Returns an errno, 0 when created, EEXIST when another
// process made it first.
int create_key_file(const std::filesystem::path& file) {
  unsigned char key[token_key_size];
  if (RAND_bytes(key, sizeof key) != 1) return EIO;
  std::string text =
      base64_encode(std::string_view(reinterpret_cast<const char*>(key), sizeof key)) + "\n";
  ::explicit_bzero(key, sizeof key);
  wipe_on_exit wipe_text(text);

  std::string temporary = file.string() + ".XXXXXX";
  const int fd = ::mkstemp(temporary.data());
  if (fd < 0) return errno;
  int error = 0;
  if (::fchmod(fd, 0400) != 0 ||
      ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
      ::fsync(fd) != 0) {
    error = errno != 0 ? errno : EIO;
  }
  ::close(fd);
  if (error == 0 && ::link(temporary.c_str(), file.c_str()) != 0) error = errno;
  ::unlink(temporary.c_str());
  if (error != 0) return error;
  // The new name reaches the disk before anything is sealed with the key.
  const int dir = ::open(file.parent_path().empty() ? "." : file.parent_path().c_str(),
                         O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  return 0;
}

token_cipher from_text(std::string& text, const std::string& origin, const std::string& fix) {
  auto key = parse_key(text);
  wipe(text);
  if (!key) {
    throw token_key_error(origin +
                              " does not hold a token key (expected 32 random bytes in "
                              "base64: 44 characters)",
                          fix);
  }
  token_cipher cipher(*key, origin);
  wipe(*key);
  return cipher;
}

}  // namespace

std::string key_file_command(const std::filesystem::path& file) {
  const std::string f = file.string();
  return "(umask 077 && head -c 32 /dev/urandom | base64 > " + f +
         ".new) && chown oauth-relay: " + f + ".new && chmod 0400 " + f + ".new && mv -n " + f +
         ".new " + f;
}

token_cipher load_token_key_file(const std::filesystem::path& file, when_missing missing) {
  const std::string name = "the token key file " + file.string();
  // O_NONBLOCK: a FIFO or device named by mistake is refused below, not waited on.
  constexpr int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  int fd = ::open(file.c_str(), flags);
  if (fd < 0 && errno == ENOENT) {
    if (missing == when_missing::fail_lost) {
      throw token_key_error(name + " does not exist", restore_fix(file));
    }
    const std::string create_fix =
        "create it as root: " + key_file_command(file) +
        " (if tokens were stored before, restore that key from your backup instead)";
    if (missing == when_missing::fail) throw token_key_error(name + " does not exist", create_fix);
    const int created = create_key_file(file);
    if (created != 0 && created != EEXIST) {
      throw token_key_error(name + " does not exist and cannot be created: " + errno_text(created),
                            create_fix);
    }
    if (created == 0) log::notice("token_key_created").kv("file", file.string());
    fd = ::open(file.c_str(), flags);
  }
  if (fd < 0) {
    const int e = errno;
    throw token_key_error("cannot read " + name + ": " + errno_text(e),
                          e == EACCES
                              ? "it must belong to the user oauth-relayd runs as, mode 0400: chown "
                                "oauth-relay: " +
                                    file.string() + " && chmod 0400 " + file.string() +
                                    " (oauth-relayctl reads it as that user too)"
                              : "check the path in secrets.key_file");
  }
  struct stat st {};
  std::string text;
  wipe_on_exit wipe_text(text);
  const int read_error = ::fstat(fd, &st) != 0 ? errno
                         : S_ISREG(st.st_mode) ? read_all(fd, text)
                                               : 0;
  ::close(fd);
  if (read_error != 0) {
    throw token_key_error("cannot read " + name + ": " + errno_text(read_error),
                          "check the file and the path in secrets.key_file");
  }
  if (!S_ISREG(st.st_mode)) {
    throw token_key_error(name + " is not a regular file", "check the path in secrets.key_file");
  }
  if ((st.st_mode & 077) != 0) {
    throw token_key_error(name + " may be read or written by others than its owner (mode " +
                              mode_text(st.st_mode) + ")",
                          "chmod 0400 " + file.string() +
                              " (readable by the user oauth-relayd runs as, and nobody else)");
  }
  return from_text(text, name,
                   "restore " + file.string() +
                       " from your backup; if no token was ever stored with it, make a new one: " +
                       key_file_command(file));
}

token_cipher load_token_cipher(const config::secrets_settings& secrets, when_missing missing) {
  if (const auto credential = config::systemd_credential(config::token_key_credential)) {
    // systemd made the file (0400, the service's, in a private directory):
    // only its content is checked.
    const std::string origin = "the systemd credential " +
                               std::string(config::token_key_credential) + " (" +
                               credential->string() + ")";
    auto contents = config::read_file(*credential);
    if (contents.error != 0) {
      throw token_key_error("cannot read " + origin + ": " + errno_text(contents.error),
                            "check LoadCredentialEncrypted=token-key:... in the unit");
    }
    return from_text(contents.text, origin,
                     "encrypt the key file again: systemd-creds encrypt --name=token-key " +
                         secrets.key_file.string() + " " + secrets.key_file.string() + ".cred");
  }
  return load_token_key_file(secrets.key_file, missing);
}

token_key_error key_mismatch(const token_cipher& cipher, const std::filesystem::path& database) {
  return token_key_error(
      cipher.origin() + " is not the key the tokens in " + database.string() + " were sealed with",
      "put back the key they were sealed with (from your backup); nothing was changed. Without "
      "it every account must be authorized again (see \"The token key\" in operations.md)");
}

token_cipher token_cipher_for(const config::settings& settings, key_creation creation) {
  std::optional<std::string> check;
  bool readable = true;
  try {
    check = stored_key_check(settings.state_dir);
  } catch (const token_store_error&) {
    // The store says why when it opens the database; meanwhile no key is made.
    readable = false;
  }
  const when_missing missing = check ? when_missing::fail_lost
                               : creation == key_creation::allowed && readable
                                   ? when_missing::create
                                   : when_missing::fail;
  auto cipher = load_token_cipher(settings.secrets, missing);
  if (check && !cipher.matches_key_check(*check)) {
    throw key_mismatch(cipher, settings.state_dir / "queue.db");
  }
  return cipher;
}

}  // namespace oauth_relay::auth
