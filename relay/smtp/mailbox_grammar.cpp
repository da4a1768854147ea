// The mailbox grammar of RFC 5321 §4.1.2 (with RFC 6531's UTF-8): character
// classes, dot-strings, quoted strings, address literals, domains. Pure.
#include "relay/smtp/mailbox_grammar.hpp"

#include <algorithm>
#include <cstring>

#include "relay/smtp/parser.hpp"

namespace oauth_relay::smtp {
namespace {

// RFC 1035 §2.3.4: a label is at most 63 octets.
constexpr std::size_t max_label = 63;

}  // namespace

namespace grammar {

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}
bool is_hex(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_non_ascii(char c) {
  return static_cast<unsigned char>(c) >= 0x80;
}
char to_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (to_upper(a[i]) != to_upper(b[i])) return false;
  }
  return true;
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim_spaces(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

bool has_non_ascii(std::string_view s) {
  for (char c : s) {
    if (is_non_ascii(c)) return true;
  }
  return false;
}

// Length of the well-formed UTF-8 sequence for a non-ASCII character at s[i]
// (RFC 3629 §4: no overlong forms, no surrogates, nothing above U+10FFFF), or 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  auto octet = [&](std::size_t k) -> unsigned {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u;
  };
  auto in = [](unsigned c, unsigned lo, unsigned hi) { return c >= lo && c <= hi; };
  const unsigned c = octet(0);
  if (in(c, 0xC2, 0xDF)) return in(octet(1), 0x80, 0xBF) ? 2 : 0;
  if (in(c, 0xE0, 0xEF)) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80;
    const unsigned hi = c == 0xED ? 0x9F : 0xBF;
    return in(octet(1), lo, hi) && in(octet(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(c, 0xF0, 0xF4)) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = c == 0xF4 ? 0x8F : 0xBF;
    return in(octet(1), lo, hi) && in(octet(2), 0x80, 0xBF) && in(octet(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

bool skip_utf8(std::string_view s, std::size_t& i) {
  const std::size_t n = utf8_sequence(s, i);
  i += n;
  return n != 0;
}

// Dot-string: Atom *("." Atom); with `utf8`, atext includes UTF8-non-ascii (RFC 6531 §3.3).
bool valid_dot_string(std::string_view s, bool utf8) {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '.') {
      if (s[i + 1] == '.') return false;  // s.back() is not '.', so i + 1 is in range
      ++i;
    } else if (is_atext(c)) {
      ++i;
    } else if (utf8 && is_non_ascii(c)) {
      if (!skip_utf8(s, i)) return false;
    } else {
      return false;
    }
  }
  return true;
}

// Quoted-string = DQUOTE *QcontentSMTP DQUOTE, starting at s[0]. Returns the
// length of the quoted string including both quotes, or 0.
std::size_t quoted_string_length(std::string_view s, bool utf8) {
  if (s.empty() || s[0] != '"') return 0;
  for (std::size_t i = 1; i < s.size();) {
    const char c = s[i];
    if (c == '"') return i + 1;
    if (c == '\\') {
      // quoted-pairSMTP = "\" %d32-126
      if (i + 1 >= s.size() || s[i + 1] < 32 || s[i + 1] > 126) return 0;
      i += 2;
    } else if (c >= 32 && c <= 126) {
      ++i;  // qtextSMTP: %d32-33 / %d35-91 / %d93-126; '"' and '\' are handled above
    } else if (utf8 && is_non_ascii(c)) {
      if (!skip_utf8(s, i)) return 0;
    } else {
      return 0;
    }
  }
  return 0;
}

// Snum 3("." Snum), Snum = 1*3DIGIT with a value of 0-255 (RFC 5321 §4.1.3).
bool valid_ipv4(std::string_view s) {
  int parts = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t digits = 0;
    unsigned value = 0;
    while (i < s.size() && is_digit(s[i]) && digits < 4) {
      value = value * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0 || digits > 3 || value > 255) return false;
    ++parts;
    if (i == s.size()) return parts == 4;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
}

// IPv6-addr of RFC 5321 §4.1.3: full, compressed ("::" stands for at least two
// groups), and either with a trailing IPv4 address counting as two groups.
bool valid_ipv6(std::string_view s) {
  int groups = 0;
  bool compressed = false;
  std::size_t i = 0;
  if (s.substr(0, 2) == "::") {
    compressed = true;
    i = 2;
    if (i == s.size()) return true;
  }
  while (true) {
    std::size_t end = s.find(':', i);
    if (end == std::string_view::npos) end = s.size();
    const std::string_view group = s.substr(i, end - i);
    if (group.find('.') != std::string_view::npos) {
      if (end != s.size() || !valid_ipv4(group)) return false;
      groups += 2;
      break;
    }
    if (group.empty() || group.size() > 4) return false;
    for (char c : group) {
      if (!is_hex(c)) return false;
    }
    ++groups;
    if (groups > 8) return false;
    if (end == s.size()) break;
    if (end + 1 < s.size() && s[end + 1] == ':') {
      if (compressed) return false;
      compressed = true;
      i = end + 2;
      if (i == s.size()) break;
    } else {
      i = end + 1;
      if (i == s.size()) return false;
    }
  }
  return compressed ? groups <= 6 : groups == 8;
}

// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]".
// General-address-literal tags other than IPv6 are not standardised; refused.
bool valid_address_literal(std::string_view s) {
  if (s.size() < 2 || s.front() != '[' || s.back() != ']') return false;
  const std::string_view inner = s.substr(1, s.size() - 2);
  if (istarts_with(inner, "IPv6:")) return valid_ipv6(inner.substr(5));
  return valid_ipv4(inner);
}

bool valid_mailbox_in(std::string_view mailbox, bool utf8) {
  // The mailbox must fit in a path "<mailbox>" (RFC 5321 §4.5.3.1.3).
  if (mailbox.size() + 2 > max_path) return false;
  std::size_t at = 0;
  if (!mailbox.empty() && mailbox[0] == '"') {
    at = quoted_string_length(mailbox, utf8);
    if (at == 0) return false;
  } else {
    at = mailbox.rfind('@');
    if (at == std::string_view::npos || !valid_dot_string(mailbox.substr(0, at), utf8)) {
      return false;
    }
  }
  if (at > max_local_part || at >= mailbox.size() || mailbox[at] != '@') return false;
  const std::string_view domain = mailbox.substr(at + 1);
  if (!domain.empty() && domain[0] == '[') return valid_address_literal(domain);
  return is_valid_domain(domain, utf8);
}

}  // namespace grammar

using namespace grammar;

bool is_atext(char c) {
  return is_alnum(c) || (c != '\0' && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr);
}

bool is_valid_domain(std::string_view domain, bool allow_utf8) {
  if (domain.empty() || domain.size() > max_domain) return false;
  while (true) {
    const std::size_t dot = domain.find('.');
    const std::string_view label = domain.substr(0, dot);
    if (label.empty() || label.size() > max_label || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (std::size_t i = 0; i < label.size();) {
      const char c = label[i];
      if (is_alnum(c) || c == '-') {
        ++i;
      } else if (allow_utf8 && is_non_ascii(c)) {
        if (!skip_utf8(label, i)) return false;
      } else {
        return false;
      }
    }
    if (dot == std::string_view::npos) return true;
    domain.remove_prefix(dot + 1);
  }
}

bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8) {
  return valid_mailbox_in(mailbox, allow_utf8);
}

bool is_valid_helo(std::string_view argument) {
  if (argument.empty() || argument.size() > max_domain) return false;
  return std::all_of(argument.begin(), argument.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

}  // namespace oauth_relay::smtp
