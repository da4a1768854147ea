// The key file's checks: a file only its owner (and group) may read, JSON
// with type "service_account", and each field the JWT bearer grant uses.
#include "config/service_account_key.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string.h>
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "common/text.hpp"
#include "config/validators.hpp"
#include "config/yaml_reader.hpp"

namespace oauth_relay::config {
namespace {

using json = nlohmann::json;

// PKCS #8 as Google writes it (RFC 7468 §10).
constexpr std::string_view pem_begin = "-----BEGIN PRIVATE KEY-----";
constexpr std::string_view pem_end = "-----END PRIVATE KEY-----";

// The parsed JSON holds the private key too: its strings are wiped with it.
class wipe_json {
 public:
  explicit wipe_json(json& j) : j_(j) {}
  ~wipe_json() {
    if (!j_.is_object()) return;
    for (auto& value : j_) {
      if (value.is_string()) wipe(value.get_ref<std::string&>());
    }
  }
  wipe_json(const wipe_json&) = delete;
  wipe_json& operator=(const wipe_json&) = delete;

 private:
  json& j_;
};

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

bool pem_armored(std::string_view pem) {
  const auto begin = pem.find(pem_begin);
  const auto end = pem.find(pem_end);
  return begin != std::string_view::npos && end != std::string_view::npos &&
         begin + pem_begin.size() < end;
}

}  // namespace

std::variant<service_account_key, std::string> parse_service_account_key(
    std::string_view json_text, const std::filesystem::path& file) {
  const std::string name = escaped(file.string());
  auto doc = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  wipe_json wipe_doc(doc);
  if (doc.is_discarded() || !doc.is_object()) {
    return name +
           " is not a service account key: expected the JSON key file Google's Cloud console "
           "downloads (IAM & Admin > Service accounts > Keys > Add key > JSON)";
  }
  // Each field: present, a non-empty string; its own check below.
  auto text = [&](const char* key, std::string& out) -> std::string {
    auto it = doc.find(key);
    if (it == doc.end()) return name + ": missing \"" + key + "\"";
    if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
      return name + ": \"" + key + "\" must be a non-empty string";
    }
    out = it->get<std::string>();
    return {};
  };
  std::string type;
  if (auto e = text("type", type); !e.empty()) return e;
  if (type != "service_account") {
    return name + ": \"type\" is " + quote(type) +
           ", not \"service_account\" (an OAuth client's file goes in oauth.client_secret_file)";
  }
  service_account_key key;
  key.file = file;
  if (auto e = text("client_email", key.client_email); !e.empty()) return e;
  if (!is_email_address(key.client_email)) {
    return name + ": \"client_email\" is not an email address";
  }
  if (auto e = text("client_id", key.client_id); !e.empty()) return e;
  if (key.client_id.find_first_not_of("0123456789") != std::string::npos) {
    return name + ": \"client_id\" must be the service account's numeric client ID";
  }
  if (auto e = text("private_key_id", key.private_key_id); !e.empty()) return e;
  if (key.private_key_id.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
    return name + ": \"private_key_id\" must be the key's hexadecimal ID";
  }
  if (auto e = text("token_uri", key.token_uri); !e.empty()) return e;
  if (!is_https_url(key.token_uri)) {
    return name +
           ": \"token_uri\" must be an https:// URL (Google's is "
           "https://oauth2.googleapis.com/token)";
  }
  std::string pem;
  wipe_on_exit wipe_pem(pem);
  if (auto e = text("private_key", pem); !e.empty()) return e;
  if (!pem_armored(pem)) {
    // Never quoted: it is (part of) the key.
    return name +
           ": \"private_key\" is not a PEM private key (-----BEGIN PRIVATE KEY----- ... "
           "-----END PRIVATE KEY-----)";
  }
  key.private_key = pem;
  return key;
}

std::variant<service_account_key, std::string> read_service_account_key(
    const std::filesystem::path& file) {
  const std::string name = escaped(file.string());
  // O_NONBLOCK: a FIFO in its place must not hang the daemon's start or reload.
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return "cannot read " + name + ": " + std::strerror(errno);
  struct stat st {};
  std::string text;
  wipe_on_exit wipe_text(text);
  int read_error = ::fstat(fd, &st) != 0 ? errno : 0;
  bool too_big = false;
  // Read only once the file is known to be private: a key others could read
  // is refused without being read.
  if (read_error == 0 && S_ISREG(st.st_mode) && (st.st_mode & S_IRWXO) == 0) {
    text.reserve(4096);
    char buffer[4096];
    for (;;) {
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) read_error = errno;
      if (n <= 0) break;
      if (text.size() + static_cast<std::size_t>(n) > max_service_account_file) {
        too_big = true;
        break;
      }
      text.append(buffer, static_cast<std::size_t>(n));
    }
    ::explicit_bzero(buffer, sizeof buffer);  // the key passed through it
  }
  ::close(fd);
  if (read_error != 0) return "cannot read " + name + ": " + std::strerror(read_error);
  if (!S_ISREG(st.st_mode)) return name + " is not a regular file";
  if ((st.st_mode & S_IRWXO) != 0) {
    return name + " may be read by every user (mode " + octal_mode(st.st_mode) +
           "): its key sends mail as any mailbox of the domain; run chmod 0640 " + file.string() +
           " (group oauth-relay) or chmod 0600";
  }
  if (too_big) return name + " is larger than 64 KiB; it is not a service account key";
  return parse_service_account_key(text, file);
}

bool pattern_covers(std::string_view pattern, std::string_view address) {
  if (!pattern.starts_with("*@")) return false;
  const std::string_view domain = pattern.substr(1);  // "@example.com"
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0) return false;
  const std::string_view tail = address.substr(at);
  return tail.size() == domain.size() &&
         std::equal(tail.begin(), tail.end(), domain.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) ==
                  std::tolower(static_cast<unsigned char>(b));
         });
}

}  // namespace oauth_relay::config
