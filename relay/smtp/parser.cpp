// SMTP command, path and ESMTP parameter parsing (RFC 5321 §4.1, RFC 6531,
// RFC 3461, RFC 1870, RFC 6152): pure functions over the command line.
#include "relay/smtp/parser.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace oauth_relay::smtp {

namespace {

// RFC 1035 §2.3.4: a label is at most 63 octets.
constexpr std::size_t max_label = 63;
// RFC 3461 §4.4: ENVID is at most 100 characters.
constexpr std::size_t max_envid = 100;
// RFC 3461 §4.2: ORCPT is at most 500 characters.
constexpr std::size_t max_orcpt = 500;
// Keywords echoed in a reply are bounded so the reply line stays short (RFC 5321 §4.5.3.1.5).
constexpr std::size_t max_keyword = 64;

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
      const std::size_t n = utf8_sequence(s, i);
      if (n == 0) return false;
      i += n;
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
      const std::size_t n = utf8_sequence(s, i);
      if (n == 0) return 0;
      i += n;
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

// --- paths -----------------------------------------------------------------

enum class path_kind { reverse, forward };

struct split_argument {
  std::string_view path;    // "<...>" or a bare mailbox
  std::string_view params;  // the rest, starting with a space or empty
};

// Separates the path from the parameters. A '>' inside a quoted local part
// does not close the path.
std::optional<split_argument> split_path(std::string_view arg) {
  if (arg.empty()) return std::nullopt;
  std::size_t end = 0;
  if (arg[0] == '<') {
    bool quoted = false;
    std::size_t i = 1;
    for (; i < arg.size(); ++i) {
      const char c = arg[i];
      if (quoted) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          quoted = false;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == '>') {
        break;
      }
    }
    if (i >= arg.size()) return std::nullopt;
    end = i + 1;
  } else {
    end = arg.find(' ');
    if (end == std::string_view::npos) end = arg.size();
  }
  if (end < arg.size() && arg[end] != ' ') return std::nullopt;
  return split_argument{arg.substr(0, end), arg.substr(end)};
}

struct parsed_path {
  std::string_view mailbox;  // route dropped; empty for <>
};

// A dot-string local part with no domain ("root"), where the server
// qualifies local names itself.
bool valid_local_name(std::string_view s) {
  return !s.empty() && s.size() <= max_local_part && valid_dot_string(s, true);
}

// Path = "<" [ A-d-l ":" ] Mailbox ">" (RFC 5321 §4.1.2), plus "<>" for the
// reverse path, "<postmaster>" for the forward path, and a bare mailbox; with
// `local_names`, a local name alone too.
// Checked with UTF-8 allowed; the caller refuses non-ASCII without SMTPUTF8.
std::optional<parsed_path> parse_path(std::string_view path, path_kind kind, bool local_names) {
  if (path.empty() || path.size() > max_path) return std::nullopt;
  if (path[0] != '<') {
    if (local_names && valid_local_name(path)) return parsed_path{path};
    if (!valid_mailbox_in(path, true)) return std::nullopt;
    return parsed_path{path};
  }
  std::string_view inner = path.substr(1, path.size() - 2);
  if (inner.empty()) {
    if (kind != path_kind::reverse) return std::nullopt;
    return parsed_path{inner};
  }
  if (kind == path_kind::forward && iequals(inner, "postmaster")) return parsed_path{inner};
  if (inner[0] == '@') {
    const std::size_t colon = inner.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    std::string_view route = inner.substr(0, colon);
    while (true) {
      const std::size_t comma = route.find(',');
      const std::string_view at_domain = route.substr(0, comma);
      if (at_domain.empty() || at_domain[0] != '@' || !is_valid_domain(at_domain.substr(1), true)) {
        return std::nullopt;
      }
      if (comma == std::string_view::npos) break;
      route.remove_prefix(comma + 1);
    }
    inner.remove_prefix(colon + 1);
  }
  if (local_names && valid_local_name(inner)) return parsed_path{inner};
  if (!valid_mailbox_in(inner, true)) return std::nullopt;
  return parsed_path{inner};
}

// --- parameters ------------------------------------------------------------

reply malformed_parameter() {
  return make_reply(555, "5.5.4", "Malformed parameter");
}

reply parameter_reply(std::string_view what, std::string_view keyword) {
  std::string text(what);
  for (char c : keyword) text += to_upper(c);
  return make_reply(555, "5.5.4", text);
}

struct parameter {
  std::string_view keyword;
  std::optional<std::string_view> value;
};

// esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 §4.1.2).
std::optional<parameter> split_parameter(std::string_view token) {
  const std::size_t eq = token.find('=');
  parameter p{token.substr(0, eq), std::nullopt};
  if (eq != std::string_view::npos) p.value = token.substr(eq + 1);
  if (p.keyword.empty() || p.keyword.size() > max_keyword || !is_alnum(p.keyword[0])) {
    return std::nullopt;
  }
  for (char c : p.keyword) {
    if (!is_alnum(c) && c != '-') return std::nullopt;
  }
  return p;
}

// Calls `handle(parameter)` for each space-separated parameter; `handle`
// returns a reply to stop with. Keywords are matched against `known` (upper
// case) so duplicates are refused before the value is looked at.
template <std::size_t N, typename Handler>
std::optional<reply> for_each_parameter(std::string_view params,
                                        const std::array<std::string_view, N>& known,
                                        Handler&& handle) {
  std::array<bool, N> seen{};
  while (true) {
    params = trim_spaces(params);
    if (params.empty()) return std::nullopt;
    const std::size_t space = params.find(' ');
    const std::string_view token = params.substr(0, space);
    params.remove_prefix(token.size());
    const auto p = split_parameter(token);
    if (!p) return malformed_parameter();
    std::size_t index = 0;
    while (index < N && !iequals(p->keyword, known[index])) ++index;
    if (index == N) return parameter_reply("Unsupported parameter ", p->keyword);
    if (seen[index]) return parameter_reply("Duplicate parameter ", p->keyword);
    seen[index] = true;
    if (!handle(index, *p)) return parameter_reply("Bad value for parameter ", p->keyword);
  }
}

// xtext (RFC 3461 §4): xchar = %x21-2A / %x2C-3C / %x3E-7E, hexchar = "+" 2HEX.
// With `utf8`, UTF8-non-ascii is allowed as well (RFC 6533 §3, utf-8-addr-unitext).
bool valid_xtext(std::string_view s, bool utf8) {
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '+') {
      if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
      i += 3;
    } else if (c >= 0x21 && c <= 0x7E && c != '=') {
      ++i;
    } else if (utf8 && is_non_ascii(c)) {
      const std::size_t n = utf8_sequence(s, i);
      if (n == 0) return false;
      i += n;
    } else {
      return false;
    }
  }
  return true;
}

std::optional<std::uint64_t> parse_size(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

bool parse_notify(std::string_view s, dsn_notify& notify) {
  notify.specified = true;
  while (true) {
    const std::size_t comma = s.find(',');
    const std::string_view item = s.substr(0, comma);
    if (iequals(item, "NEVER")) {
      notify.never = true;
    } else if (iequals(item, "SUCCESS")) {
      notify.success = true;
    } else if (iequals(item, "FAILURE")) {
      notify.failure = true;
    } else if (iequals(item, "DELAY")) {
      notify.delay = true;
    } else {
      return false;
    }
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return !(notify.never && (notify.success || notify.failure || notify.delay));
}

// orcpt-parameter = "ORCPT=" original-recipient-address, addr-type ";" xtext
// (RFC 3461 §4.2); addr-type is an atom such as "rfc822" or "utf-8".
bool valid_orcpt(std::string_view s, bool smtputf8) {
  if (s.size() > max_orcpt) return false;
  const std::size_t semicolon = s.find(';');
  if (semicolon == 0 || semicolon == std::string_view::npos || semicolon + 1 == s.size()) {
    return false;
  }
  const std::string_view type = s.substr(0, semicolon);
  for (char c : type) {
    if (!is_atext(c)) return false;
  }
  return valid_xtext(s.substr(semicolon + 1), smtputf8 && iequals(type, "utf-8"));
}

reply bad_sender() {
  return make_reply(501, "5.1.7", "Bad sender address syntax");
}
reply bad_recipient() {
  return make_reply(501, "5.1.3", "Bad recipient address syntax");
}
reply needs_smtputf8() {
  return make_reply(553, "5.6.7", "Non-ASCII address needs SMTPUTF8");
}

struct verb_name {
  std::string_view text;
  verb name;
};
constexpr std::array<verb_name, 14> verbs{{
    {"HELO", verb::helo},
    {"EHLO", verb::ehlo},
    {"MAIL", verb::mail},
    {"RCPT", verb::rcpt},
    {"DATA", verb::data},
    {"RSET", verb::rset},
    {"NOOP", verb::noop},
    {"QUIT", verb::quit},
    {"VRFY", verb::vrfy},
    {"EXPN", verb::expn},
    {"HELP", verb::help},
    {"STARTTLS", verb::starttls},
    {"AUTH", verb::auth},
    {"BDAT", verb::bdat},
}};

}  // namespace

parsed_command parse_command(std::string_view line) {
  parsed_command result;
  const std::size_t space = line.find(' ');
  const std::string_view word = line.substr(0, space);
  std::string_view rest = space == std::string_view::npos ? std::string_view{} : line.substr(space);
  for (const auto& v : verbs) {
    if (iequals(word, v.text)) result.cmd.name = v.name;
  }
  rest = trim_spaces(rest);
  const std::string_view prefix = result.cmd.name == verb::mail   ? "FROM:"
                                  : result.cmd.name == verb::rcpt ? "TO:"
                                                                  : "";
  if (!prefix.empty()) {
    if (istarts_with(rest, prefix)) {
      rest = trim_spaces(rest.substr(prefix.size()));
    } else {
      result.argument_ok = false;
    }
  }
  result.cmd.argument = rest;
  return result;
}

std::variant<mail_from, reply> parse_mail_from(std::string_view argument, bool local_names) {
  const auto split = split_path(trim_spaces(argument));
  if (!split) return bad_sender();
  const auto path = parse_path(split->path, path_kind::reverse, local_names);
  if (!path) return bad_sender();

  mail_from result;
  mail_parameters& params = result.params;
  // AUTH= (RFC 4954 §5) is checked and dropped: the relay does not pass on
  // who a client claims the message came from.
  static constexpr std::array<std::string_view, 6> known{"SIZE", "BODY",  "SMTPUTF8",
                                                         "RET",  "ENVID", "AUTH"};
  const auto error =
      for_each_parameter(split->params, known, [&](std::size_t index, const parameter& p) {
        if (index == 2) {  // SMTPUTF8 takes no value (RFC 6531 §3.4)
          params.smtputf8 = true;
          return !p.value.has_value();
        }
        if (!p.value) return false;
        const std::string_view value = *p.value;
        switch (index) {
          case 0:
            params.size = parse_size(value);
            return params.size.has_value();
          case 1:
            if (iequals(value, "7BIT")) {
              params.body = body_type::seven_bit;
            } else if (iequals(value, "8BITMIME")) {
              params.body = body_type::eight_bit_mime;
            } else {
              return false;
            }
            return true;
          case 3:
            if (iequals(value, "FULL")) {
              params.ret = dsn_ret::full;
            } else if (iequals(value, "HDRS")) {
              params.ret = dsn_ret::headers;
            } else {
              return false;
            }
            return true;
          case 4:
            params.envid = value;
            return !value.empty() && value.size() <= max_envid && valid_xtext(value, false);
          default:
            return value == "<>" || (!value.empty() && valid_xtext(value, false));
        }
      });
  if (error) return *error;
  if (!params.smtputf8 && has_non_ascii(split->path)) return needs_smtputf8();
  result.address = path->mailbox;
  return result;
}

std::variant<rcpt_to, reply> parse_rcpt_to(std::string_view argument, bool smtputf8,
                                           bool local_names) {
  const auto split = split_path(trim_spaces(argument));
  if (!split) return bad_recipient();
  const auto path = parse_path(split->path, path_kind::forward, local_names);
  if (!path) return bad_recipient();

  rcpt_to result;
  rcpt_parameters& params = result.params;
  static constexpr std::array<std::string_view, 2> known{"NOTIFY", "ORCPT"};
  const auto error =
      for_each_parameter(split->params, known, [&](std::size_t index, const parameter& p) {
        if (!p.value) return false;
        if (index == 0) return parse_notify(*p.value, params.notify);
        params.orcpt = *p.value;
        return valid_orcpt(*p.value, smtputf8);
      });
  if (error) return *error;
  if (!smtputf8 && has_non_ascii(split->path)) return needs_smtputf8();
  result.address = path->mailbox;
  return result;
}

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
        const std::size_t n = utf8_sequence(label, i);
        if (n == 0) return false;
        i += n;
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
