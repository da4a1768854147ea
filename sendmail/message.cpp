// Command line, message reading and header work of oauth-relay-sendmail; no
// I/O beyond the istream it is given.
#include "sendmail/message.hpp"

#include <algorithm>
#include <cctype>

#include "relay/smtp/parser.hpp"

namespace oauth_relay::sendmail {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

// ftext: printable US-ASCII except the colon.
bool is_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ':') return false;
  }
  return true;
}

std::string strip_angles(std::string s) {
  if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
  return s;
}

// "root" -> "root@host", as sendmail qualifies local names with its domain.
std::string qualify(const std::string& address, const std::string& hostname) {
  if (address.empty() || address.find('@') != std::string::npos) return address;
  return address + "@" + hostname;
}

// Whitespace outside quoted strings goes (obsolete "a @ b" forms, folding).
std::string remove_unquoted_space(std::string_view s) {
  std::string out;
  bool quoted = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (quoted && c == '\\' && i + 1 < s.size()) {
      out += c;
      out += s[++i];
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && (is_wsp(c) || c == '\r' || c == '\n')) continue;
    out += c;
  }
  return out;
}

}  // namespace

parse_result parse_arguments(const std::vector<std::string>& args) {
  options o;
  auto error = [](std::string text) { return parse_result{std::nullopt, std::move(text)}; };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      for (++i; i < args.size(); ++i) o.recipients.push_back(args[i]);
      break;
    }
    if (a == "--help") {
      o.help = true;
      continue;
    }
    if (a == "--version") {
      o.version = true;
      continue;
    }
    if (a.size() < 2 || a[0] != '-') {
      if (a.empty() || a == "-") return error("bad argument \"" + a + "\"");
      o.recipients.push_back(a);
      continue;
    }
    if (a[1] == '-') return error("unknown option " + a);
    for (std::size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      // Flags: -t and -i act, the rest are sendmail's harmless ones.
      if (c == 't') {
        o.extract_recipients = true;
        continue;
      }
      if (c == 'i') {
        o.ignore_dots = true;
        continue;
      }
      if (std::string_view("mvnUG").find(c) != std::string_view::npos) continue;
      if (std::string_view("frFcobBNRVXhLA").find(c) == std::string_view::npos) {
        return error(std::string("unknown option -") + c);
      }
      // An option with a value: the rest of this argument or the next one.
      std::string value;
      if (j + 1 < a.size()) {
        value = a.substr(j + 1);
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return error(std::string("option -") + c + " needs a value");
      }
      switch (c) {
        case 'f':
        case 'r':
          o.sender = strip_angles(value);
          break;
        case 'F':
          o.full_name = value;
          break;
        case 'c':
          o.config = value;
          break;
        case 'o':
          // -oi is -i; -od*, -oe*, -om and other sendmail.cf overrides mean
          // nothing here.
          if (value == "i") o.ignore_dots = true;
          break;
        case 'b':
          if (value != "m") {
            return error("-b" + value +
                         " is not supported: oauth-relay-sendmail only reads a message (-bm)");
          }
          break;
        default:  // -B type, -N dsn, -R ret, -V envid, -X log, -h hops, -L tag, -A m|c
          break;
      }
      break;
    }
  }
  if (!o.help && !o.version && !o.extract_recipients && o.recipients.empty()) {
    return error("no recipients: name them as arguments or use -t to read them from the header");
  }
  return {std::move(o), {}};
}

std::string read_message(std::istream& in, bool ignore_dots) {
  std::string out;
  std::string line;
  while (std::getline(in, line)) {
    const bool ended = !in.eof();  // the line had its LF
    if (!ignore_dots && (line == "." || line == ".\r")) break;
    out += line;
    if (ended) out += '\n';
  }
  return out;
}

std::string to_crlf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 32 + 2);
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      out += "\r\n";
      ++i;
    } else if (c == '\n') {
      out += "\r\n";
    } else {
      out += c;
    }
  }
  if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0)) {
    out += "\r\n";
  }
  return out;
}

parsed_message parse_message(std::string_view text) {
  parsed_message m;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find("\r\n", at);
    if (end == std::string_view::npos) end = text.size();
    const auto line = text.substr(at, end - at);
    const std::size_t next = std::min(text.size(), end + 2);
    if (line.empty()) {
      m.has_separator = true;
      at = next;
      break;
    }
    if (is_wsp(line[0]) && !m.header.empty()) {
      m.header.back().value += std::string(text.substr(at, next - at));
      at = next;
      continue;
    }
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || !is_field_name(line.substr(0, colon))) {
      break;  // not a header field: the body starts here, without a separator
    }
    m.header.push_back({std::string(line.substr(0, colon)),
                        std::string(text.substr(at + colon + 1, next - at - colon - 1))});
    at = next;
  }
  m.body = std::string(text.substr(at));
  return m;
}

std::string render_message(const parsed_message& m) {
  std::string out;
  for (const auto& f : m.header) out += f.name + ":" + f.value;
  if (m.has_separator || !m.body.empty()) out += "\r\n";
  out += m.body;
  return out;
}

std::vector<std::string> parse_address_list(std::string_view value) {
  std::vector<std::string> out;
  std::string element;  // outside angle brackets: display name or a bare addr-spec
  std::string angle;    // inside <...>
  bool has_angle = false;
  bool in_angle = false;
  auto flush = [&] {
    std::string address = remove_unquoted_space(has_angle ? angle : element);
    // <@relay1,@relay2:user@host>: the route is obsolete, the mailbox stays.
    if (has_angle && !address.empty() && address[0] == '@') {
      const auto colon = address.find(':');
      address = colon == std::string::npos ? std::string() : address.substr(colon + 1);
    }
    if (!address.empty()) out.push_back(address);
    element.clear();
    angle.clear();
    has_angle = false;
    in_angle = false;
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    std::string& into = in_angle ? angle : element;
    if (c == '(') {
      // A comment, possibly nested, with quoted-pairs: dropped.
      int depth = 1;
      for (++i; i < value.size() && depth > 0; ++i) {
        if (value[i] == '\\') {
          ++i;
        } else if (value[i] == '(') {
          ++depth;
        } else if (value[i] == ')') {
          --depth;
        }
      }
      --i;
      into += ' ';
    } else if (c == '"') {
      into += c;
      for (++i; i < value.size(); ++i) {
        into += value[i];
        if (value[i] == '\\' && i + 1 < value.size()) {
          into += value[++i];
        } else if (value[i] == '"') {
          break;
        }
      }
    } else if (c == '<' && !in_angle) {
      in_angle = true;
      has_angle = true;
      angle.clear();
    } else if (c == '>' && in_angle) {
      in_angle = false;
    } else if (in_angle) {
      angle += c;
    } else if (c == ',' || c == ';') {
      flush();  // next mailbox, or the end of a group
    } else if (c == ':') {
      element.clear();  // "display-name:" opens a group
    } else {
      element += c;
    }
  }
  flush();
  return out;
}

std::string display_name(std::string_view name) {
  bool atoms = !name.empty();
  for (char c : name) atoms = atoms && (smtp::is_atext(c) || c == ' ');
  if (atoms) return std::string(name);
  std::string out = "\"";
  for (char c : name) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\r' || c == '\n') continue;
    out += c;
  }
  return out + "\"";
}

prepare_result prepare(const options& opts, std::string_view message, const environment& env) {
  auto parsed = parse_message(to_crlf(message));
  std::vector<std::string> found;
  for (const auto& r : opts.recipients) found.push_back(r);
  if (opts.extract_recipients) {
    for (const auto& f : parsed.header) {
      const auto name = lower(f.name);
      if (name != "to" && name != "cc" && name != "bcc") continue;
      for (auto& a : parse_address_list(f.value)) found.push_back(std::move(a));
    }
    // Blind copies stay blind: the field goes, its addresses stay in the envelope.
    std::erase_if(parsed.header, [](const header_field& f) { return lower(f.name) == "bcc"; });
  }
  submission s;
  for (const auto& r : found) {
    const auto address = qualify(strip_angles(r), env.hostname);
    if (address.empty()) continue;
    const auto key = lower(address);
    const bool seen = std::any_of(s.recipients.begin(), s.recipients.end(),
                                  [&](const std::string& x) { return lower(x) == key; });
    if (!seen) s.recipients.push_back(address);
  }
  if (s.recipients.empty()) {
    return {std::nullopt, "no recipients found in the To:, Cc: or Bcc: fields"};
  }
  const std::string own = qualify(env.login, env.hostname);
  s.sender = opts.sender ? qualify(*opts.sender, env.hostname) : own;
  auto has = [&](std::string_view field) {
    return std::any_of(parsed.header.begin(), parsed.header.end(),
                       [&](const header_field& f) { return lower(f.name) == field; });
  };
  const std::string from_address = s.sender.empty() ? own : s.sender;
  if (!has("from")) {
    parsed.header.push_back(
        {"From", " " +
                     (opts.full_name && !opts.full_name->empty()
                          ? display_name(*opts.full_name) + " <" + from_address + ">"
                          : from_address) +
                     "\r\n"});
  }
  if (!has("date")) parsed.header.push_back({"Date", " " + env.date + "\r\n"});
  if (!has("message-id")) parsed.header.push_back({"Message-ID", " " + env.message_id + "\r\n"});
  s.content = render_message(parsed);
  return {std::move(s), {}};
}

std::string dot_stuff(std::string_view content) {
  std::string out;
  out.reserve(content.size() + 16);
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '.') out += '.';
    out += c;
    line_start = c == '\n';
  }
  out += ".\r\n";
  return out;
}

}  // namespace oauth_relay::sendmail
