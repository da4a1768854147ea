// Helpers of the HTTPS stand-ins: the codings every OAuth endpoint speaks,
// written once for fake_oauth and fake_microsoft.
#include "fakes/http_fake_parts.hpp"

#include <openssl/evp.h>

#include <cctype>
#include <chrono>

#include "common/text.hpp"

namespace oauth_relay::fakes::http_parts {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string_view path_of(std::string_view target) {
  return target.substr(0, target.find('?'));
}

fields query_of(std::string_view target) {
  const auto question = target.find('?');
  return question == std::string_view::npos ? fields() : decode_form(target.substr(question + 1));
}

std::string with_query(const std::string& uri, const std::string& query) {
  return uri + (uri.find('?') == std::string::npos ? '?' : '&') + query;
}

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

fields decode_form(std::string_view text) {
  auto unescape = [](std::string_view in) {
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (in[i] == '+') {
        out += ' ';
      } else if (in[i] == '%' && i + 2 < in.size() &&
                 std::isxdigit(static_cast<unsigned char>(in[i + 1])) &&
                 std::isxdigit(static_cast<unsigned char>(in[i + 2]))) {
        out += static_cast<char>(std::stoi(std::string(in.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        out += in[i];
      }
    }
    return out;
  };
  fields out;
  for (const auto& [name, value] : query_pairs(text)) out[unescape(name)] = unescape(value);
  return out;
}

std::string escape(std::string_view in) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : in) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 0xf];
    }
  }
  return out;
}

std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string s256(std::string_view verifier) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(verifier.data(), verifier.size(), digest, &length, EVP_sha256(), nullptr);
  return base64url(std::string_view(reinterpret_cast<const char*>(digest), length));
}

std::set<std::string> split_scope(std::string_view scope) {
  std::set<std::string> out;
  while (!scope.empty()) {
    const auto space = scope.find(' ');
    if (space != 0) out.emplace(scope.substr(0, space));
    if (space == std::string_view::npos) break;
    scope.remove_prefix(space + 1);
  }
  return out;
}

std::string fake_jwt(const std::string& claims_json) {
  return base64url(R"({"alg":"RS256","kid":"fake","typ":"JWT"})") + "." + base64url(claims_json) +
         "." + base64url("fake-sig");
}

}  // namespace oauth_relay::fakes::http_parts
