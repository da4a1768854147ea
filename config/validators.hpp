// The config's pure text checks: IP literals, networks, listen addresses, host
// and domain names, mail addresses, numbers, URLs. No YAML, no positions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace oauth_relay::config {

// RFC 1035 §2.3.4: 255 octets per name, 253 in text form (no final dot).
inline constexpr std::size_t max_domain_name_length = 253;
// A `listen` entry for a Unix socket starts with this.
inline constexpr std::string_view unix_socket_prefix = "unix:";
// sockaddr_un's sun_path holds 108 octets with the final NUL (unix(7)).
inline constexpr std::size_t max_unix_socket_path = 107;

// An IP literal (no brackets, no zone) as 4 or 16 bytes.
std::optional<std::vector<std::uint8_t>> parse_ip(std::string_view text);
// inet_ntop's canonical text for 4 or 16 bytes.
std::string format_ip(const std::vector<std::uint8_t>& ip);
// ::ffff:a.b.c.d
bool is_v4_mapped(const std::vector<std::uint8_t>& ip);

// "10.0.0.0/8", "::1/128", or a bare address for a single host; host bits
// cleared, IPv4-mapped IPv6 networks stored as the IPv4 network they mean.
std::optional<network> parse_network(std::string_view text);

// A host name (RFC 1123 §2.1) of at most 253 characters whose last label is
// not all digits, so "10.0.0.1" is not a name.
bool is_domain_name(std::string_view name);
// The upstream host: a domain name or an IP literal, IPv6 also in brackets
// as in a URL ("[::1]" is ::1). The host without brackets.
std::optional<std::string> parse_host(std::string_view text);

// local@domain with a dot-atom local part and a domain name (no quoted local
// part, no address literal: no Google account has one).
bool is_email_address(std::string_view address);
// An address, or a pattern with '*' standing for any run of characters.
bool is_sender_pattern(std::string_view pattern);

// An SMTP AUTH login name (clients.logins_file, permit.logins): 1 to 64 of
// ASCII letters, digits and . _ - @ +, not starting with "-" (it would read as
// an option on oauth-relayctl's command line).
inline constexpr std::size_t max_login_name = 64;
bool is_login_name(std::string_view name);

// Digits only, 1 or more; no sign, no spaces.
std::optional<std::size_t> parse_positive(std::string_view text);
// 1-65535.
std::optional<std::uint16_t> parse_port(std::string_view text);
// "https://" and something after it, with no space or control character.
bool is_https_url(std::string_view text);

}  // namespace oauth_relay::config
