// libFuzzer target for the SMTP command and path parsers: every input line goes
// through each parser, and the results must stay consistent with each other.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/smtp/parser.hpp"

namespace smtp = oauth_relay::smtp;

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

bool has_non_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return true;
  }
  return false;
}

// An error reply is one well-formed line with a 5xx code and an enhanced code.
void check_reply(const smtp::reply& r) {
  check(r.code >= 500 && r.code <= 599);
  check(r.enhanced.size() == 5 && r.enhanced[0] == '5');
  const std::string wire = r.wire();
  check(wire.size() >= 6 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
  check(wire.find_first_of("\r\n") == wire.size() - 2);
}

void check_mail(std::string_view argument) {
  const auto result = smtp::parse_mail_from(argument);
  if (const auto* r = std::get_if<smtp::reply>(&result)) {
    check_reply(*r);
    return;
  }
  const auto& mail = std::get<smtp::mail_from>(result);
  const bool utf8 = mail.params.smtputf8;
  check(mail.address.empty() || smtp::is_valid_mailbox(mail.address, utf8));
  // The accepted address parses again to itself.
  const auto again = smtp::parse_mail_from("<" + mail.address + ">" + (utf8 ? " SMTPUTF8" : ""));
  check(std::holds_alternative<smtp::mail_from>(again) &&
        std::get<smtp::mail_from>(again).address == mail.address);
}

void check_rcpt(std::string_view argument, bool smtputf8) {
  const auto result = smtp::parse_rcpt_to(argument, smtputf8);
  if (const auto* r = std::get_if<smtp::reply>(&result)) {
    check_reply(*r);
    return;
  }
  const auto& rcpt = std::get<smtp::rcpt_to>(result);
  check(!rcpt.address.empty());
  check(smtputf8 || !has_non_ascii(rcpt.address));
  const auto again = smtp::parse_rcpt_to("<" + rcpt.address + ">", smtputf8);
  check(std::holds_alternative<smtp::rcpt_to>(again) &&
        std::get<smtp::rcpt_to>(again).address == rcpt.address);
}

// With local names allowed: what the strict parse accepts is accepted the
// same; anything more is a local name alone (no '@', at most 64 octets),
// which parses again to itself.
void check_local_names(std::string_view argument) {
  const auto mail = smtp::parse_mail_from(argument, true);
  const auto strict = smtp::parse_mail_from(argument);
  if (const auto* m = std::get_if<smtp::mail_from>(&strict)) {
    check(std::holds_alternative<smtp::mail_from>(mail) &&
          std::get<smtp::mail_from>(mail).address == m->address);
  }
  if (const auto* m = std::get_if<smtp::mail_from>(&mail); m && !m->address.empty()) {
    const bool utf8 = m->params.smtputf8;
    if (!smtp::is_valid_mailbox(m->address, utf8)) {
      check(m->address.find('@') == std::string::npos);
      check(m->address.size() <= smtp::max_local_part);
      check(m->address.find_first_of("<> \t\r\n\"") == std::string::npos);
    }
    const auto again =
        smtp::parse_mail_from("<" + m->address + ">" + (utf8 ? " SMTPUTF8" : ""), true);
    check(std::holds_alternative<smtp::mail_from>(again) &&
          std::get<smtp::mail_from>(again).address == m->address);
  }
  const auto rcpt = smtp::parse_rcpt_to(argument, true, true);
  if (const auto* r = std::get_if<smtp::rcpt_to>(&rcpt)) {
    check(!r->address.empty());
    if (!smtp::is_valid_mailbox(r->address, true) && r->address != "postmaster") {
      check(r->address.find('@') == std::string::npos);
      check(r->address.find_first_of("<> \t\r\n\"") == std::string::npos);
    }
  }
}

void check_line(std::string_view line) {
  const smtp::parsed_command p = smtp::parse_command(line);
  const std::string_view argument = p.cmd.argument;
  if (!argument.empty()) {
    check(argument.data() >= line.data() &&
          argument.data() + argument.size() <= line.data() + line.size());
    check(argument.front() != ' ' && argument.back() != ' ');
  }
  if (p.cmd.name != smtp::verb::mail && p.cmd.name != smtp::verb::rcpt) check(p.argument_ok);

  check_mail(argument);
  check_local_names(argument);
  check_rcpt(argument, false);
  check_rcpt(argument, true);
  check_mail(line);
  check_rcpt(line, true);

  const bool mailbox_ascii = smtp::is_valid_mailbox(line, false);
  const bool mailbox_utf8 = smtp::is_valid_mailbox(line, true);
  check(!mailbox_ascii || mailbox_utf8);
  check(!mailbox_ascii || !has_non_ascii(line));
  check(!mailbox_utf8 || line.size() + 2 <= smtp::max_path);
  const bool domain_ascii = smtp::is_valid_domain(line, false);
  check(!domain_ascii || smtp::is_valid_domain(line, true));
  check(!domain_ascii || smtp::is_valid_helo(line));
  if (smtp::is_valid_helo(line)) {
    check(!line.empty() && line.find_first_of(" \t\r\n") == std::string_view::npos);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  while (!input.empty()) {
    const std::size_t newline = input.find('\n');
    std::string_view line = input.substr(0, newline);
    input.remove_prefix(newline == std::string_view::npos ? input.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    check_line(line);
  }
  return 0;
}
