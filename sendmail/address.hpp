// The addresses of oauth-relay-sendmail: a sender, a recipient argument or a
// To/Cc/Bcc field as sendmail(8) users write them, reduced to bare mailboxes
// that pass the server's own grammar (smtp::is_valid_mailbox), or refused with
// the reason; and the one function that puts a mailbox into MAIL or RCPT.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace oauth_relay::sendmail {

// What an address list reduces to: the mailboxes, or why it cannot be used.
// Every mailbox returned contains no CR, LF, NUL, '<' or '>' and passes
// smtp::is_valid_mailbox (UTF-8 allowed, as RFC 6531 lets the relay take it).
struct address_list_result {
  std::vector<std::string> mailboxes;  // empty when `problem` is set
  std::optional<std::string> problem;  // "it contains a line break (CR or LF)"
};

// An RFC 5322 address-list (§3.4), as a recipient argument or an unfolded
// To/Cc/Bcc field holds it: addr-specs with or without display names and
// angle brackets, groups ("team: a@x, b@y;"), comments, quoted local parts;
// route addresses lose their route. A name without "@" ("root") is a local
// name, qualified with `domain` as sendmail does. White space may stand
// around "@", "." and the brackets (CFWS) but not between two words of an
// address ("a b@x"). Anything else (a control character, a stray '<' or '>',
// text after the closing '>', an empty "<>", a part over the RFC 5321 limits)
// refuses the whole list: nothing is half-used.
address_list_result parse_address_list(std::string_view text, std::string_view domain);

// The -f/-r value: exactly one address in any form above, or "" / "<>" for
// the null sender (an empty mailbox).
struct sender_result {
  std::optional<std::string> mailbox;  // "" for the null sender
  std::string problem;                 // set when mailbox is not
};
sender_result parse_sender(std::string_view text, std::string_view domain);

// A header field's value with its folding undone (RFC 5322 §2.2.3): the
// trailing CRLF goes and every CRLF followed by white space becomes that
// white space. A CR or LF left over is not folding; the address parser
// refuses it.
std::string unfold(std::string_view value);

// The one place where the envelope commands are built. `mailbox` must be one
// the functions above returned ("" only for MAIL: the null sender); anything
// else, above all a CR, LF or NUL, throws std::invalid_argument rather than
// reaching the socket.
enum class envelope_verb { mail_from, rcpt_to };
std::string envelope_command(envelope_verb verb, std::string_view mailbox);

// `text` for an error message: control characters as \xNN, quotes and
// backslashes escaped, cut after a few hundred bytes.
std::string shown(std::string_view text);

}  // namespace oauth_relay::sendmail
