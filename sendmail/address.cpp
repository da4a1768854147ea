// Address lists as sendmail(8) users write them, reduced to bare mailboxes
// checked with the server's grammar; a tokenizer, then a small parser. Pure.
#include "sendmail/address.hpp"

#include <stdexcept>

#include "common/text.hpp"
#include "relay/smtp/parser.hpp"

namespace oauth_relay::sendmail {
namespace {

// How much of a refused address an error message shows.
constexpr std::size_t shown_limit = 200;

enum class token_kind { word, quoted, literal, special };

struct token {
  token_kind kind;
  std::string text;           // quoted strings with their quotes, literals with brackets
  bool space_before = false;  // white space or a comment stood before it
};

bool is_special(const token& t, char c) {
  return t.kind == token_kind::special && t.text[0] == c;
}

bool is_word(const token& t) {
  return t.kind == token_kind::word || t.kind == token_kind::quoted;
}

struct tokens {
  std::vector<token> list;
  std::optional<std::string> problem;
};

// Control characters are refused before anything else: no reading of the
// text may let a line break or a NUL through to the dialogue.
std::optional<std::string> control_problem(std::string_view text) {
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\0') return "it contains a NUL byte";
    if (c == '\r' || c == '\n') return "it contains a line break (CR or LF)";
    if ((u < 0x20 && c != '\t') || u == 0x7f) return "it contains a control character";
  }
  return std::nullopt;
}

// RFC 5322 §3.2: atoms (atext, and UTF-8 as RFC 6532 allows), quoted strings,
// domain literals and the specials; comments and white space only separate.
tokens tokenize(std::string_view s) {
  tokens out;
  auto fail = [&](std::string why) {
    out.problem = std::move(why);
    return out;
  };
  if (auto problem = control_problem(s)) return fail(*problem);
  bool space = false;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == ' ' || c == '\t') {
      space = true;
      ++i;
    } else if (c == '(') {
      int depth = 1;
      for (++i; i < s.size() && depth > 0; ++i) {
        if (s[i] == '\\') {
          ++i;
        } else if (s[i] == '(') {
          ++depth;
        } else if (s[i] == ')') {
          --depth;
        }
      }
      if (depth > 0) return fail("it has a comment '(' that is not closed");
      space = true;
    } else if (c == '"') {
      std::size_t j = i + 1;
      while (j < s.size() && s[j] != '"') j += s[j] == '\\' ? 2 : 1;
      if (j >= s.size()) return fail("it has a quoted string that is not closed");
      out.list.push_back({token_kind::quoted, std::string(s.substr(i, j + 1 - i)), space});
      space = false;
      i = j + 1;
    } else if (c == '[') {
      const std::size_t close = s.find_first_of("[]\\", i + 1);
      if (close == std::string_view::npos || s[close] != ']') {
        return fail("it has a '[' that is not closed");
      }
      out.list.push_back({token_kind::literal, std::string(s.substr(i, close + 1 - i)), space});
      space = false;
      i = close + 1;
    } else if (c == ')' || c == ']') {
      return fail(std::string("it has a '") + c + "' without its opening one");
    } else if (c == '\\') {
      return fail("it has a backslash outside quotes");
    } else if (std::string_view("<>@,;:.").find(c) != std::string_view::npos) {
      out.list.push_back({token_kind::special, std::string(1, c), space});
      space = false;
      ++i;
    } else {
      // What is left of printable ASCII is atext; bytes above 0x7f are UTF-8
      // (checked by the mailbox grammar where it matters).
      std::size_t j = i;
      while (j < s.size() && (smtp::is_atext(s[j]) || static_cast<unsigned char>(s[j]) >= 0x80)) {
        ++j;
      }
      if (j == i) return fail("it has the character '" + std::string(1, c) + "'");
      out.list.push_back({token_kind::word, std::string(s.substr(i, j - i)), space});
      space = false;
      i = j;
    }
  }
  return out;
}

// One mailbox or a refusal.
struct mailbox_result {
  std::string mailbox;
  std::optional<std::string> problem;
};

mailbox_result refused(std::string why) {
  return {{}, std::move(why)};
}

// The checks every mailbox passes, with the reason a person can act on.
mailbox_result checked(std::string mailbox, std::size_t local_size, std::size_t domain_size) {
  if (mailbox.find_first_of("<>") != std::string::npos) {
    return refused("it has '<' or '>' inside its quoted local part");
  }
  if (local_size > smtp::max_local_part) {
    return refused("its local part is longer than " + std::to_string(smtp::max_local_part) +
                   " octets (RFC 5321 §4.5.3.1.1)");
  }
  if (domain_size > smtp::max_domain) {
    return refused("its domain is longer than " + std::to_string(smtp::max_domain) +
                   " octets (RFC 5321 §4.5.3.1.2)");
  }
  if (mailbox.size() + 2 > smtp::max_path) {
    return refused("it is longer than " + std::to_string(smtp::max_path - 2) +
                   " octets, the most a path of " + std::to_string(smtp::max_path) +
                   " holds (RFC 5321 §4.5.3.1.3)");
  }
  if (!smtp::is_valid_mailbox(mailbox, true)) {
    return refused("it is not a mailbox of the form local-part@domain");
  }
  return {std::move(mailbox), std::nullopt};
}

// addr-spec = local-part "@" domain, or a local name alone. Its tokens
// stand together: white space (or a comment) inside it, which RFC 5322 only
// allows around its "@" and dots, is refused, so "a b@x" is never read as
// "ab@x" or as two addresses.
mailbox_result addr_spec(const std::vector<token>& t, std::size_t from, std::size_t to,
                         std::string_view domain) {
  const auto not_a_mailbox = [] {
    return refused("it is not a mailbox of the form local-part@domain");
  };
  for (std::size_t j = from + 1; j < to; ++j) {
    if (t[j].space_before) return refused("it has a space or tab outside quotes");
  }
  std::size_t j = from;
  if (j == to || !is_word(t[j])) return not_a_mailbox();
  std::string local = t[j++].text;
  while (j < to && is_special(t[j], '.')) {
    if (++j == to || !is_word(t[j])) return refused("it has a '.' without a word after it");
    local += "." + t[j++].text;
  }
  if (j == to) {
    // "root": a local name, qualified as sendmail does.
    const std::size_t local_size = local.size();
    return checked(local + "@" + std::string(domain), local_size, domain.size());
  }
  if (!is_special(t[j], '@')) return not_a_mailbox();
  if (++j == to) return refused("it has nothing after the '@'");
  std::string host;
  if (t[j].kind == token_kind::literal) {
    host = t[j++].text;
  } else {
    if (t[j].kind != token_kind::word) return not_a_mailbox();
    host = t[j++].text;
    while (j < to && is_special(t[j], '.')) {
      if (++j == to || t[j].kind != token_kind::word) {
        return refused("it has a '.' without a word after it");
      }
      host += "." + t[j++].text;
    }
  }
  if (j != to) return not_a_mailbox();
  return checked(local + "@" + host, local.size(), host.size());
}

// One element of the list: a mailbox with or without "phrase <...>".
mailbox_result mailbox(const std::vector<token>& t, std::size_t from, std::size_t to,
                       std::string_view domain) {
  std::size_t open = from;
  while (open < to && !is_special(t[open], '<')) ++open;
  if (open == to) return addr_spec(t, from, to, domain);
  // The display name is never sent; any words, dots and '@' may be in it.
  std::size_t close = open + 1;
  while (close < to && !is_special(t[close], '>')) ++close;
  if (close == to) return refused("it has a '<' without its '>'");
  if (close + 1 != to) return refused("it has text after the closing '>'");
  std::size_t inner = open + 1;
  if (inner == close) return refused("it has an empty address <>");
  if (is_special(t[inner], '@')) {
    // <@relay1,@relay2:user@host>: the route is obsolete (RFC 5321 §4.1.2); the mailbox stays.
    while (inner < close && !is_special(t[inner], ':')) {
      const token& r = t[inner];
      if (!is_special(r, '@') && !is_special(r, ',') && !is_special(r, '.') &&
          r.kind != token_kind::word) {
        return refused("it has a route that is not @domain,...:");
      }
      ++inner;
    }
    if (inner == close) return refused("it has a route without the ':' that ends it");
    ++inner;
  }
  return addr_spec(t, inner, close, domain);
}

}  // namespace

address_list_result parse_address_list(std::string_view text, std::string_view domain) {
  address_list_result out;
  auto fail = [&](std::string why) {
    out.mailboxes.clear();
    out.problem = std::move(why);
    return out;
  };
  auto tokenized = tokenize(text);
  if (tokenized.problem) return fail(*tokenized.problem);
  const auto& t = tokenized.list;
  bool in_group = false;
  bool in_angle = false;
  std::size_t start = 0;
  // Ends the element [start, end): empty ones are skipped (obs-addr-list, "a,,b").
  auto element = [&](std::size_t end) -> std::optional<std::string> {
    if (end > start) {
      auto m = mailbox(t, start, end, domain);
      if (m.problem) return m.problem;
      out.mailboxes.push_back(std::move(m.mailbox));
    }
    start = end + 1;
    return std::nullopt;
  };
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i].kind != token_kind::special) continue;
    const char c = t[i].text[0];
    if (c == '<') {
      if (in_angle) return fail("it has a '<' inside '<...>'");
      in_angle = true;
    } else if (c == '>') {
      if (!in_angle) return fail("it has a '>' without a '<' before it");
      in_angle = false;
    } else if (in_angle) {
      continue;  // ',' and ':' of a route
    } else if (c == ',') {
      if (auto problem = element(i)) return fail(*problem);
    } else if (c == ';') {
      if (!in_group) return fail("it has a ';' outside a group");
      if (auto problem = element(i)) return fail(*problem);
      in_group = false;
    } else if (c == ':') {
      // "display-name:" opens a group; the name is only words and dots.
      if (in_group) return fail("it has a group inside a group");
      for (std::size_t j = start; j < i; ++j) {
        if (!is_word(t[j]) && !is_special(t[j], '.')) {
          return fail("it has a ':' that neither opens a group nor ends a route");
        }
      }
      start = i + 1;
      in_group = true;
    }
  }
  if (in_angle) return fail("it has a '<' without its '>'");
  if (in_group) return fail("it has a group without the ';' that ends it");
  if (auto problem = element(t.size())) return fail(*problem);
  return out;
}

sender_result parse_sender(std::string_view text, std::string_view domain) {
  if (text.empty() || text == "<>") return {std::string(), {}};
  auto list = parse_address_list(text, domain);
  if (list.problem) return {std::nullopt, *list.problem};
  if (list.mailboxes.empty()) return {std::nullopt, "it holds no address"};
  if (list.mailboxes.size() > 1) return {std::nullopt, "it holds more than one address"};
  return {std::move(list.mailboxes.front()), {}};
}

std::string unfold(std::string_view value) {
  if (value.ends_with("\r\n")) value.remove_suffix(2);
  std::string out;
  out.reserve(value.size());
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\r' && i + 2 < value.size() && value[i + 1] == '\n' &&
        (value[i + 2] == ' ' || value[i + 2] == '\t')) {
      ++i;
      continue;
    }
    out += value[i];
  }
  return out;
}

std::string envelope_command(envelope_verb verb, std::string_view mailbox) {
  // Defence in depth: the parsers above never return such a mailbox, and a
  // command is never built from anything else.
  const bool null_sender = verb == envelope_verb::mail_from && mailbox.empty();
  if (mailbox.find_first_of(std::string_view("\r\n\0<>", 5)) != std::string_view::npos ||
      (!null_sender && !smtp::is_valid_mailbox(mailbox, true))) {
    throw std::invalid_argument("not a checked mailbox: \"" + shown(mailbox) + "\"");
  }
  const std::string_view prefix = verb == envelope_verb::mail_from ? "MAIL FROM:<" : "RCPT TO:<";
  std::string out(prefix);
  out += mailbox;
  out += '>';
  return out;
}

std::string shown(std::string_view text) {
  return one_line(escaped(text, "\"\\"), shown_limit);
}

}  // namespace oauth_relay::sendmail
