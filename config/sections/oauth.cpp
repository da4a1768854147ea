// The `oauth` section: the OAuth client the relay gets its tokens with, and
// the endpoints it uses. Required; the client secret is never quoted.
#include <string>

#include "common/text.hpp"
#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"oauth"};

// client_secret or client_secret_file: exactly one.
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
    const auto p = r.path(*secret_file);
    const auto contents = p ? r.file_text(*secret_file, *p) : std::nullopt;
    if (contents) {
      // The trailing newline an editor or `echo` adds is not part of the secret.
      std::string_view text = *contents;
      while (!text.empty() &&
             std::string_view(" \t\r\n\f\v").find(text.back()) != std::string_view::npos) {
        text.remove_suffix(1);
      }
      if (text.empty()) {
        r.add(*secret_file, escaped(p->string()) + " is empty");
      } else {
        s.client_secret = std::string(text);
        s.client_secret_file = *p;
      }
    }
  } else {
    r.missing(oauth, "\"client_secret\" or \"client_secret_file\"");
  }
}

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("oauth");
  if (!f) {
    r.missing(top.self(), "\"oauth\"");
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
