// A Google service account's JSON key file (`accounts[].service_account_file`):
// read with the care of the other secrets, every field checked, errors naming the file.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <variant>

#include "common/secret.hpp"

namespace oauth_relay::config {

// What the relay takes from the key Google's Cloud console hands out
// (IAM & Admin > Service accounts > Keys > Add key > JSON). The rest of the
// file (project_id, auth_uri, certificate URLs) is not needed and not kept.
struct service_account_key {
  std::filesystem::path file;  // where it was read from, for messages
  std::string client_email;    // the JWT's iss
  std::string client_id;       // what Domain-wide delegation in the Admin console lists
  std::string private_key_id;  // the JWT header's kid
  std::string token_uri;       // the JWT's aud, and where the assertion is posted
  secret_string private_key;   // PEM (PKCS #8); never logged, wiped when freed
};

// A key file larger than this is not one (Google's are about 2.4 KB).
inline constexpr std::size_t max_service_account_file = 64 * 1024;

// The JSON text of a key file; an error (one sentence naming `file` and the
// field) when a field the relay needs is missing or wrong.
std::variant<service_account_key, std::string> parse_service_account_key(
    std::string_view json_text, const std::filesystem::path& file);

// Reads and parses the file: a regular file that other users may not read
// (its key can send as every mailbox of the domain). The text read is wiped.
std::variant<service_account_key, std::string> read_service_account_key(
    const std::filesystem::path& file);

// Whether the domain pattern "*@example.com" covers `address` (any local
// part, the domain compared without case).
bool pattern_covers(std::string_view pattern, std::string_view address);

}  // namespace oauth_relay::config
