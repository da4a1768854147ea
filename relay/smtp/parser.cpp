// SMTP command, path and ESMTP parameter parsing (RFC 5321 §4.1, RFC 6531,
// RFC 3461, RFC 1870, RFC 6152): pure functions over the command line.
#include "relay/smtp/parser.hpp"

#include "relay/smtp/mailbox_grammar.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace oauth_relay::smtp {

namespace {

using namespace grammar;

// RFC 3461 §4.4: ENVID is at most 100 characters.
constexpr std::size_t max_envid = 100;
// RFC 3461 §4.2: ORCPT is at most 500 characters.
constexpr std::size_t max_orcpt = 500;
// Keywords echoed in a reply are bounded so the reply line stays short (RFC 5321 §4.5.3.1.5).
constexpr std::size_t max_keyword = 64;

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
      if (!skip_utf8(s, i)) return false;
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

}  // namespace oauth_relay::smtp
