// What the HTTPS stand-ins of the identity providers (fake_oauth,
// fake_microsoft) share: form, URL and target coding, PKCE's S256, scopes, JWT parts.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

namespace oauth_relay::fakes::http_parts {

using fields = std::map<std::string, std::string>;

std::string lower(std::string s);
// A lookup into `f` that answers "" for a missing field; `f` must outlive it.
inline auto reader(const fields& f) {
  return [&f](const std::string& name) {
    auto it = f.find(name);
    return it == f.end() ? std::string() : it->second;
  };
}
// A request target's path (before '?') and its decoded query (none: empty).
std::string_view path_of(std::string_view target);
fields query_of(std::string_view target);
// `uri` with `query` appended after '?', or after '&' when it has a query already.
std::string with_query(const std::string& uri, const std::string& query);
// Seconds since the Unix epoch, for JWT claims (iat, exp).
std::int64_t unix_seconds();
// application/x-www-form-urlencoded and query strings.
fields decode_form(std::string_view text);
// RFC 3986 percent-encoding of all but the unreserved characters.
std::string escape(std::string_view in);
std::string base64url(std::string_view bytes);
// RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier))).
std::string s256(std::string_view verifier);
std::set<std::string> split_scope(std::string_view scope);
// An unsigned-looking JWT whose payload is `claims_json` (the relay does not
// check id_token signatures: it gets them straight from the token endpoint).
std::string fake_jwt(const std::string& claims_json);

}  // namespace oauth_relay::fakes::http_parts
