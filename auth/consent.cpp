// PKCE, state and consent URL for oauth-relayctl authorize, and the parser
// for the redirect that comes back (through the loopback listener or pasted).
#include "auth/consent.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cctype>
#include <climits>
#include <stdexcept>

#include "common/text.hpp"

namespace oauth_relay::auth {
namespace {

bool unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string_view trim(std::string_view text) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace

std::string random_octets(std::size_t n) {
  std::string out(n, '\0');
  if (n > INT_MAX ||
      RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("the system's random number generator failed (OpenSSL RAND_bytes)");
  }
  return out;
}

std::string s256_challenge(std::string_view verifier) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(verifier.data(), verifier.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed (OpenSSL EVP_Digest)");
  }
  return base64url_encode(std::string_view(reinterpret_cast<const char*>(digest), length));
}

pkce make_pkce() {
  pkce p;
  p.verifier = base64url_encode(random_octets(verifier_octets));
  p.challenge = s256_challenge(p.verifier);
  return p;
}

std::string make_state() {
  return base64url_encode(random_octets(state_octets));
}

std::string loopback_redirect_uri(std::uint16_t port) {
  return "http://127.0.0.1:" + std::to_string(port) + "/";
}

std::string percent_encode(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (unreserved(c)) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string percent_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
               hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string consent_url(const consent_request& r) {
  const std::pair<std::string_view, std::string_view> params[] = {
      {"client_id", r.client_id},        {"redirect_uri", r.redirect_uri},
      {"response_type", "code"},         {"scope", r.scope},
      {"access_type", "offline"},        {"prompt", "consent"},
      {"login_hint", r.login_hint},      {"code_challenge", r.code_challenge},
      {"code_challenge_method", "S256"}, {"state", r.state},
  };
  std::string url = r.auth_url;
  char separator = url.find('?') == std::string::npos ? '?' : '&';
  if (!url.empty() && (url.back() == '?' || url.back() == '&')) separator = '\0';
  for (const auto& [name, value] : params) {
    if (name == "access_type" && !r.access_type_offline) continue;
    if (separator != '\0') url += separator;
    separator = '&';
    url += name;
    url += '=';
    url += percent_encode(value);
  }
  return url;
}

std::optional<redirect_params> parse_redirect(std::string_view text) {
  text = trim(text);
  while (!text.empty() && (text.front() == '"' || text.front() == '\'' || text.front() == '<')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == '"' || text.back() == '\'' || text.back() == '>')) {
    text.remove_suffix(1);
  }
  if (const auto hash = text.find('#'); hash != std::string_view::npos) {
    text = text.substr(0, hash);
  }
  std::string_view query;
  if (const auto question = text.find('?'); question != std::string_view::npos) {
    query = text.substr(question + 1);
  } else if (text.find('=') != std::string_view::npos && text.find('/') == std::string_view::npos) {
    query = text;  // just the query, without its '?'
  } else {
    return std::nullopt;
  }

  redirect_params out;
  for (const auto& [raw_name, raw_value] : query_pairs(query)) {
    const std::string name = percent_decode(raw_name);
    std::string value = percent_decode(raw_value);
    // RFC 6749 §3.1: parameters must not repeat; the first one counts.
    if (name == "code" && !out.code) {
      out.code = std::move(value);
    } else if (name == "state" && !out.state) {
      out.state = std::move(value);
    } else if (name == "error" && !out.error) {
      out.error = std::move(value);
    } else if (name == "error_description" && out.error_description.empty()) {
      out.error_description = std::move(value);
    } else if (name == "scope" && out.scope.empty()) {
      out.scope = std::move(value);
    }
  }
  return out;
}

std::string_view target_path(std::string_view target) {
  return target.substr(0, target.find_first_of("?#"));
}

bool scope_granted(std::string_view granted, std::string_view wanted) {
  if (trim(granted).empty()) return true;
  while (!granted.empty()) {
    const auto space = granted.find(' ');
    if (granted.substr(0, space) == wanted) return true;
    if (space == std::string_view::npos) break;
    granted.remove_prefix(space + 1);
  }
  return false;
}

}  // namespace oauth_relay::auth
