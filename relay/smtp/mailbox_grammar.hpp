// The mailbox grammar shared by the command parser and the address checks
// (relay/smtp/mailbox_grammar.cpp); the public checks are in parser.hpp.
#pragma once

#include <cstddef>
#include <string_view>

namespace oauth_relay::smtp::grammar {

bool is_alpha(char c);
bool is_digit(char c);
bool is_alnum(char c);
bool is_hex(char c);
bool is_non_ascii(char c);
char to_upper(char c);
bool iequals(std::string_view a, std::string_view b);
bool istarts_with(std::string_view s, std::string_view prefix);
std::string_view trim_spaces(std::string_view s);
bool has_non_ascii(std::string_view s);
std::size_t utf8_sequence(std::string_view s, std::size_t i);
// Steps `i` over the UTF-8 sequence at s[i]; false when there is none.
bool skip_utf8(std::string_view s, std::size_t& i);
bool valid_dot_string(std::string_view s, bool utf8);
std::size_t quoted_string_length(std::string_view s, bool utf8);
bool valid_ipv4(std::string_view s);
bool valid_ipv6(std::string_view s);
bool valid_address_literal(std::string_view s);
bool valid_mailbox_in(std::string_view mailbox, bool utf8);

}  // namespace oauth_relay::smtp::grammar
