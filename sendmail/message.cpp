// Command line, message reading and header work of oauth-relay-sendmail; no
// I/O beyond the istream it is given.
#include "sendmail/message.hpp"

#include <algorithm>
#include <cctype>

#include "relay/smtp/parser.hpp"
#include "sendmail/address.hpp"

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

// The invoking user's address: the login name at the hostname. A name the
// mailbox grammar cannot carry is refused like a bad -f.
sender_result own_address(const environment& env) {
  auto own = parse_sender(env.login, env.hostname);
  if (own.mailbox && own.mailbox->empty()) return {std::nullopt, "it is empty"};
  return own;
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
      if (a == "-") return error("bad argument \"-\"");
      o.recipients.push_back(a);  // "" too: refused as an address, exit 64
      continue;
    }
    if (a[1] == '-') return error("unknown option " + shown(a));
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
        return error("unknown option -" + shown(std::string_view(&c, 1)));
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
          o.sender = value;  // checked with the other addresses (command_line_envelope)
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
            return error("-b" + shown(value) +
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

std::string display_name(std::string_view name) {
  bool atoms = !name.empty();
  for (char c : name) atoms = atoms && (smtp::is_atext(c) || c == ' ');
  if (atoms) return std::string(name);
  std::string out = "\"";
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) continue;
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

envelope_result command_line_envelope(const options& opts, const environment& env) {
  auto refuse = [](std::string what, std::string_view written, const std::string& why) {
    return envelope_result{std::nullopt, "bad " + what + " \"" + shown(written) + "\": " + why};
  };
  envelope e;
  if (opts.sender) {
    auto sender = parse_sender(*opts.sender, env.hostname);
    if (!sender.mailbox) return refuse("sender address (-f)", *opts.sender, sender.problem);
    e.sender = std::move(*sender.mailbox);
  } else {
    auto own = own_address(env);
    if (!own.mailbox) {
      return refuse("default sender (the login name)", env.login,
                    own.problem + "; give the sender with -f");
    }
    e.sender = std::move(*own.mailbox);
  }
  for (const auto& written : opts.recipients) {
    auto list = parse_address_list(written, env.hostname);
    if (list.problem) return refuse("recipient address", written, *list.problem);
    if (list.mailboxes.empty()) {
      return refuse("recipient address", written,
                    written.empty() ? "it is empty" : "it holds no address");
    }
    for (auto& m : list.mailboxes) e.recipients.push_back(std::move(m));
  }
  return {std::move(e), {}};
}

prepare_result prepare(const options& opts, std::string_view message, const environment& env) {
  auto command_line = command_line_envelope(opts, env);
  if (!command_line.value) return {std::nullopt, exit_bad_address, std::move(command_line.error)};
  auto& e = *command_line.value;
  auto parsed = parse_message(to_crlf(message));
  std::vector<std::string> found = std::move(e.recipients);
  if (opts.extract_recipients) {
    for (const auto& f : parsed.header) {
      const auto name = lower(f.name);
      if (name != "to" && name != "cc" && name != "bcc") continue;
      auto list = parse_address_list(unfold(f.value), env.hostname);
      if (list.problem) {
        return {std::nullopt, exit_bad_address,
                "bad address in the " + f.name + ": field \"" + shown(unfold(f.value)) +
                    "\": " + *list.problem};
      }
      for (auto& a : list.mailboxes) found.push_back(std::move(a));
    }
    // Blind copies stay blind: the field goes, its addresses stay in the envelope.
    std::erase_if(parsed.header, [](const header_field& f) { return lower(f.name) == "bcc"; });
  }
  submission s;
  for (auto& address : found) {
    const auto key = lower(address);
    const bool seen = std::any_of(s.recipients.begin(), s.recipients.end(),
                                  [&](const std::string& x) { return lower(x) == key; });
    if (!seen) s.recipients.push_back(std::move(address));
  }
  if (s.recipients.empty()) {
    return {std::nullopt, exit_dataerr, "no recipients found in the To:, Cc: or Bcc: fields"};
  }
  s.sender = std::move(e.sender);
  auto has = [&](std::string_view field) {
    return std::any_of(parsed.header.begin(), parsed.header.end(),
                       [&](const header_field& f) { return lower(f.name) == field; });
  };
  if (!has("from")) {
    // The null sender's message is still from someone: the login name.
    std::string from_address = s.sender;
    if (from_address.empty()) {
      auto own = own_address(env);
      if (!own.mailbox) {
        return {std::nullopt, exit_bad_address,
                "bad default sender (the login name) \"" + shown(env.login) + "\": " + own.problem +
                    "; give the message a From: field"};
      }
      from_address = std::move(*own.mailbox);
    }
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
  return {std::move(s), exit_ok, {}};
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
