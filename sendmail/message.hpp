// The pure part of oauth-relay-sendmail: its sendmail-style command line,
// reading the message (the lone-dot rule), the envelope from -f, the
// arguments and, with -t, the header (sendmail/address.hpp checks every
// address), Bcc removal, the headers sendmail adds, and the wire form (CRLF,
// dot-stuffing).
#pragma once

#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oauth_relay::sendmail {

// Exit statuses (sysexits.h, as sendmail; usage errors are 2 as for every
// oauth-relay program).
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_bad_address = 64;  // EX_USAGE: an address that is not a mailbox
inline constexpr int exit_dataerr = 65;      // EX_DATAERR: -t found no recipient
inline constexpr int exit_software = 70;     // EX_SOFTWARE: an internal check failed
inline constexpr int exit_unavailable = 69;  // EX_UNAVAILABLE: the relay said 5xx
inline constexpr int exit_tempfail = 75;     // EX_TEMPFAIL: relay unreachable or 4xx

inline constexpr const char* default_config = "/etc/oauth-relay/config.yaml";

struct options {
  std::string config = default_config;
  bool extract_recipients = false;       // -t
  bool ignore_dots = false;              // -i, -oi: a lone "." does not end the input
  std::optional<std::string> sender;     // -f / -r as written ("" or "<>": the null sender)
  std::optional<std::string> full_name;  // -F
  std::vector<std::string> recipients;   // arguments as written, each an address list
  bool help = false;
  bool version = false;
};

struct parse_result {
  std::optional<options> value;
  std::string error;  // set when value is not: the usage problem
};

// sendmail's syntax: clustered flags (-ti), option values attached or
// separate (-fme, -f me), -o options, -b modes; "--" ends the options.
parse_result parse_arguments(const std::vector<std::string>& args);

// Reads the message from `in` up to the end of input or, without
// `ignore_dots`, up to a line that is a single "." (not included).
std::string read_message(std::istream& in, bool ignore_dots);

// The message split at its first empty line; every line ends with CRLF.
struct header_field {
  std::string name;   // as written
  std::string value;  // everything after the colon, continuation lines included (with CRLFs)
};
struct parsed_message {
  std::vector<header_field> header;
  std::string body;  // after the empty line (which is not included)
  bool has_separator = false;
};

// Line ends become CRLF (LF alone, or CRLF); a last line without one gets one.
std::string to_crlf(std::string_view text);
parsed_message parse_message(std::string_view crlf_text);
std::string render_message(const parsed_message& m);

// What to submit: the envelope and the message as it goes on the wire
// (before dot-stuffing).
struct submission {
  std::string sender;  // envelope sender; empty for <>
  std::vector<std::string> recipients;
  std::string content;  // CRLF lines
};

// The context a submission needs from the system, passed in for tests.
struct environment {
  std::string login;       // the invoking user's name
  std::string hostname;    // config `hostname`, or the host's name
  std::string date;        // RFC 5322 date for a missing Date:
  std::string message_id;  // "<...@host>" for a missing Message-ID:
};

// The envelope the command line gives: -f (or the login name) and the
// recipient arguments, as checked bare mailboxes (local names qualified with
// env.hostname). Known before the message is read.
struct envelope {
  std::string sender;  // "" for <>
  std::vector<std::string> recipients;
};
struct envelope_result {
  std::optional<envelope> value;
  std::string error;  // one line naming the refused address and why
};
envelope_result command_line_envelope(const options& opts, const environment& env);

struct prepare_result {
  std::optional<submission> value;
  int status = exit_ok;  // when value is not: exit_bad_address or exit_dataerr
  std::string error;     // one line: the refused address and why, or "no recipients"
};

// The command line's envelope, and with -t the recipients from To, Cc and Bcc
// (added to the arguments; any address there that is not a mailbox refuses
// the message), Bcc removed. From: "NAME <sender>" (or just the sender) when
// missing; Date: and Message-ID: when missing, as sendmail and Postfix add
// them. Every address in the result passes smtp::is_valid_mailbox.
prepare_result prepare(const options& opts, std::string_view message, const environment& env);

// The DATA payload: dot-stuffed, ending with ".\r\n".
std::string dot_stuff(std::string_view crlf_content);

// "Name" as a display name: an atom sequence as is, anything else quoted
// (control characters other than tab dropped: they have no place in a header).
std::string display_name(std::string_view name);

}  // namespace oauth_relay::sendmail
