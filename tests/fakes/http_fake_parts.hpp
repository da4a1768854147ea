// What the HTTPS stand-ins of the identity providers (fake_oauth,
// fake_microsoft) share: form and URL coding, PKCE's S256, scopes, JWT parts.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

namespace oauth_relay::fakes::http_parts {

using fields = std::map<std::string, std::string>;

std::string lower(std::string s);
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
