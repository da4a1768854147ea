// systemd credentials (systemd.exec(5), "Credentials"): secrets a unit hands
// its service as files in $CREDENTIALS_DIRECTORY, decrypted by systemd.
#pragma once

#include <filesystem>
#include <optional>
#include <string_view>

namespace oauth_relay::config {

// The credentials oauth-relayd takes (LoadCredential= or LoadCredentialEncrypted=).
inline constexpr std::string_view token_key_credential = "token-key";
inline constexpr std::string_view client_secret_credential = "client-secret";

// $CREDENTIALS_DIRECTORY/NAME when the process was given that credential;
// nothing outside a service or when the unit does not load it.
std::optional<std::filesystem::path> systemd_credential(std::string_view name);

}  // namespace oauth_relay::config
