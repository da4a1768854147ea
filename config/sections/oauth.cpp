// The `oauth` section: the OAuth client the relay gets its tokens with, and
// the endpoints it uses. Required; the client secret is never quoted.
#include <cstring>
#include <string>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "config/credentials.hpp"
#include "config/schema.hpp"

namespace oauth_relay::config {

std::string trimmed_secret(std::string text);

// Also providers.microsoft.client_secret_file's reader.
void read_secret_file(reader& r, const field& f, secret_string& secret,
                      std::optional<std::filesystem::path>& file) {
  const auto p = r.path(f);
  auto contents = p ? r.file_text(f, *p) : std::nullopt;
  if (!contents) return;
  std::string text = trimmed_secret(std::move(*contents));
  if (text.empty()) {
    r.add(f, escaped(p->string()) + " is empty");
  } else {
    secret = std::move(text);
    file = *p;
  }
}

// The secret without the trailing newline an editor or `echo` adds; the
// text read is wiped either way (also providers.microsoft.client_secret_file).
std::string trimmed_secret(std::string text) {
  std::string_view secret = text;
  while (!secret.empty() &&
         std::string_view(" \t\r\n\f\v").find(secret.back()) != std::string_view::npos) {
    secret.remove_suffix(1);
  }
  std::string out(secret);
  wipe(text);
  return out;
}

namespace {

constexpr std::string_view keys[] = {"oauth"};

// The systemd credential `client-secret`, when the service has one: it takes
// precedence over the config file's keys, which become optional.
bool read_credential(reader& r, oauth_settings& s) {
  const auto file = systemd_credential(client_secret_credential);
  if (!file) return false;
  const std::string name = "the systemd credential " + std::string(client_secret_credential) +
                           " (" + escaped(file->string()) + ")";
  file_contents contents = read_file(*file);
  if (contents.error != 0) {
    r.add(position{}, "oauth: cannot read " + name + ": " + std::strerror(contents.error));
    return true;
  }
  std::string secret = trimmed_secret(std::move(contents.text));
  if (secret.empty()) {
    r.add(position{}, "oauth: " + name + " is empty");
    return true;
  }
  wipe(s.client_secret);
  s.client_secret = std::move(secret);
  return true;
}

// client_secret or client_secret_file: exactly one, unless the credential
// gives the secret; then either may still be there (oauth-relayctl, which
// runs outside the service, uses it) and the credential wins.
void read_secret(reader& r, const field& oauth, const mapping& m, oauth_settings& s) {
  const auto secret = m.find("client_secret");
  const auto secret_file = m.find("client_secret_file");
  if (secret && secret_file) {
    const field& later = secret->anchor < secret_file->anchor ? *secret_file : *secret;
    r.add(later.anchor,
          "oauth: client_secret and client_secret_file are both set; expected exactly one");
  } else if (secret) {
    // Never quote the value: it is the secret.
    if (!secret->value.IsScalar()) {
      r.add(*secret, "expected a string, got " + describe(secret->value));
    } else if (secret->value.Scalar().empty()) {
      r.add(*secret, "expected a non-empty string");
    } else {
      s.client_secret = secret->value.Scalar();
    }
  } else if (secret_file) {
    read_secret_file(r, *secret_file, s.client_secret, s.client_secret_file);
  }
  const bool from_credential = read_credential(r, s);
  if (!secret && !secret_file && !from_credential) {
    r.missing(oauth,
              "\"client_secret\" or \"client_secret_file\" (or the systemd credential "
              "\"client-secret\")");
  }
}

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("oauth");
  if (!f) {
    // Needed by Google's accounts authorized by consent: the accounts section says so.
    all.oauth.present = false;
    return;
  }
  const mapping m(
      r, *f,
      {"client_id", "client_secret", "client_secret_file", "auth_url", "token_url", "ca_file"});
  if (!m.ok()) return;
  oauth_settings& s = all.oauth;
  if (const auto id = m.find("client_id")) {
    if (auto text = r.non_empty_string(*id)) s.client_id = *text;
  } else {
    r.missing(*f, "\"client_id\"");
  }
  read_secret(r, *f, m, s);
  r.read_into(m, "auth_url", s.auth_url, &reader::https_url);
  r.read_into(m, "token_url", s.token_url, &reader::https_url);
  r.read_into(m, "ca_file", s.ca_file, &reader::readable_path_or_null);
}

}  // namespace

extern const section oauth_section{keys, read};

}  // namespace oauth_relay::config
