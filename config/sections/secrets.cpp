// The `secrets` section: where the key that encrypts the stored OAuth tokens
// lives when systemd does not hand it over as the credential `token-key`.
#include "config/schema.hpp"

namespace oauth_relay::config {
namespace {

constexpr std::string_view keys[] = {"secrets"};

// The file is not read here: oauth-relayd creates it on its first start, and
// whoever loads the key (auth/token_key) checks its mode and content.
void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("secrets");
  if (!f) return;
  const mapping m(r, *f, {"key_file"});
  if (!m.ok()) return;
  r.read_into(m, "key_file", all.secrets.key_file, &reader::path);
}

}  // namespace

extern const section secrets_section{keys, read};

}  // namespace oauth_relay::config
