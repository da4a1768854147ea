// libFuzzer target for a service account's key file (config/service_account_key):
// any bytes give either a key with every field set or one error line naming the
// file; never the private key's text in an error, an exception, crash or hang.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "config/service_account_key.hpp"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto parsed = oauth_relay::config::parse_service_account_key(text, "/fuzz/sa.json");
  if (const auto* key = std::get_if<oauth_relay::config::service_account_key>(&parsed)) {
    check(!key->client_email.empty() && !key->client_id.empty() && !key->private_key_id.empty());
    check(key->token_uri.rfind("https://", 0) == 0);
    check(key->private_key.find("-----BEGIN PRIVATE KEY-----") != std::string::npos);
    return 0;
  }
  const auto& error = std::get<std::string>(parsed);
  check(error.rfind("/fuzz/sa.json", 0) == 0);
  check(error.find('\n') == std::string::npos && error.find('\r') == std::string::npos);
  // Whatever the file held as its private_key never shows in the error.
  const auto doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_object()) {
    const auto it = doc.find("private_key");
    if (it != doc.end() && it->is_string() && it->get_ref<const std::string&>().size() >= 16) {
      check(error.find(it->get_ref<const std::string&>()) == std::string::npos);
    }
  }
  return 0;
}
