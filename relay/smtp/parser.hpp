// Pure parsing of SMTP commands, paths and ESMTP parameters (RFC 5321 §4.1,
// RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN). No I/O:
// table-tested and fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "relay/smtp/reply.hpp"

namespace oauth_relay::smtp {

// RFC 5321 §4.5.3.1.4: 512 octets for a command line including CRLF, plus the
// room RFC 1870 §3 (26, SIZE) and RFC 3461 §5 (500, ORCPT/ENVID) add.
inline constexpr std::size_t max_command_line = 512 + 26 + 500;
// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
inline constexpr std::size_t max_text_line = 1000;
// RFC 5321 §4.5.3.1.3 (path 256 octets), §4.5.3.1.1 (local part 64), §4.5.3.1.2 (domain 255).
inline constexpr std::size_t max_path = 256;
inline constexpr std::size_t max_local_part = 64;
inline constexpr std::size_t max_domain = 255;

enum class verb {
  helo,
  ehlo,
  mail,
  rcpt,
  data,
  rset,
  noop,
  quit,
  vrfy,
  expn,
  help,
  starttls,
  auth,
  bdat,
  unknown
};

struct command {
  verb name = verb::unknown;
  std::string_view argument;  // what follows the verb (and "FROM:"/"TO:"), spaces trimmed
};

// Splits a command line (without its CRLF) into verb and argument. Verbs are
// case-insensitive; "MAIL FROM:" and "RCPT TO:" are recognised with optional
// spaces before the path as many clients send them. A line for MAIL without
// "FROM:" (or RCPT without "TO:") is returned with name set and argument_ok false.
struct parsed_command {
  command cmd;
  bool argument_ok = true;
};
parsed_command parse_command(std::string_view line);

enum class body_type { unspecified, seven_bit, eight_bit_mime };
enum class dsn_ret { unspecified, full, headers };

struct mail_parameters {
  std::optional<std::uint64_t> size;  // SIZE=
  body_type body = body_type::unspecified;
  bool smtputf8 = false;
  dsn_ret ret = dsn_ret::unspecified;
  std::string envid;  // ENVID= as received (xtext-encoded)
};

// RFC 3461 §4.1 NOTIFY: NEVER, or any of SUCCESS, FAILURE, DELAY.
struct dsn_notify {
  bool specified = false;
  bool never = false;
  bool success = false;
  bool failure = false;
  bool delay = false;
};

struct rcpt_parameters {
  dsn_notify notify;
  std::string orcpt;  // ORCPT= as received: "rfc822;user@example.com" (xtext)
};

struct mail_from {
  std::string address;  // empty for the null reverse-path <>
  mail_parameters params;
};

struct rcpt_to {
  std::string address;
  rcpt_parameters params;
};

// Parses "<path> [params]" after "MAIL FROM:". Errors are the exact reply to
// send: 501 5.1.7 bad sender address, 555 5.5.4 unknown or malformed parameter,
// 553 5.6.7 non-ASCII address without SMTPUTF8 (RFC 6531 §3.5). Source routes
// (<@a,@b:user@host>) are accepted and dropped (RFC 5321 §4.1.2). With
// `local_names`, a local name alone ("<root>", a dot-string) is accepted
// too and returned without a domain, for the server to qualify.
std::variant<mail_from, reply> parse_mail_from(std::string_view argument, bool local_names = false);

// Parses "<path> [params]" after "RCPT TO:". `smtputf8` tells whether the
// transaction's MAIL had SMTPUTF8. "<postmaster>" is accepted. Errors: 501 5.1.3
// bad recipient address, 555 5.5.4 parameters, 553 5.6.7 as above.
// `local_names` as for parse_mail_from.
std::variant<rcpt_to, reply> parse_rcpt_to(std::string_view argument, bool smtputf8,
                                           bool local_names = false);

// RFC 5322 §3.2.3 atext, ASCII part: what a dot-atom holds besides its dots.
bool is_atext(char c);

// A mailbox ("local@domain") as RFC 5321 §4.1.2 (and RFC 6531 §3.3 when
// `allow_utf8`) allows: dot-string or quoted local part, domain name or address
// literal, within the length limits above (so at most max_path - 2 octets: it
// must fit in "<mailbox>").
bool is_valid_mailbox(std::string_view mailbox, bool allow_utf8);

// A domain name: dot-separated labels of letters, digits and inner hyphens
// (UTF-8 U-labels too when `allow_utf8`), each 1-63 octets, at most max_domain
// in all. Address literals are not domains.
bool is_valid_domain(std::string_view domain, bool allow_utf8);

// HELO/EHLO argument: a domain or address literal; lenient enough for old
// clients (any printable non-space ASCII token) but never empty. Never 8-bit:
// RFC 6531 §3.7.1 has even an SMTPUTF8 client send an ASCII (A-label)
// domain in EHLO, and the name goes into the Received: header of messages
// that may not be SMTPUTF8.
bool is_valid_helo(std::string_view argument);

}  // namespace oauth_relay::smtp
