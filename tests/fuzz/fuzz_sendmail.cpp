// libFuzzer target for oauth-relay-sendmail's command line and addresses:
// every address that comes out of -f, a recipient argument or a -t header has
// no CR, LF, NUL, '<' or '>' and passes the server's mailbox grammar, and the
// DATA payload can end only at its own end.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "relay/smtp/parser.hpp"
#include "sendmail/address.hpp"
#include "sendmail/message.hpp"

namespace sendmail = oauth_relay::sendmail;
namespace smtp = oauth_relay::smtp;

namespace {

// No input can make an argument list this long worth more coverage.
constexpr std::size_t max_arguments = 16;
constexpr std::string_view domain = "relay.example";

void check(bool condition) {
  if (!condition) __builtin_trap();
}

void check_mailbox(std::string_view m) {
  check(m.find_first_of(std::string_view("\r\n\0<>", 5)) == std::string_view::npos);
  check(smtp::is_valid_mailbox(m, true));
  // The one builder of envelope commands takes it (it throws otherwise).
  check(sendmail::envelope_command(sendmail::envelope_verb::rcpt_to, m) ==
        "RCPT TO:<" + std::string(m) + ">");
}

void check_list(std::string_view text) {
  const auto r = sendmail::parse_address_list(text, domain);
  check(!r.problem || r.mailboxes.empty());
  for (const auto& m : r.mailboxes) check_mailbox(m);
  const auto s = sendmail::parse_sender(text, domain);
  check(s.mailbox.has_value() == s.problem.empty());
  if (s.mailbox && !s.mailbox->empty()) check_mailbox(*s.mailbox);
  if (s.mailbox && s.mailbox->empty()) check(text.empty() || text == "<>");
}

// The payload as the relay reads it: "\r\n.\r\n" only at the very end, and
// no LF without its CR.
void check_payload(const std::string& content) {
  const std::string wire = "\r\n" + sendmail::dot_stuff(content);
  check(wire.find("\r\n.\r\n") == wire.size() - 5);
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (wire[i] == '\n') check(i > 0 && wire[i - 1] == '\r');
  }
}

}  // namespace

// The input: arguments separated by NUL (an argv cannot hold one), ended by
// an empty argument ("\0\0"), then the message. Without "\0\0" all of it is
// both one address text and the message.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  check_list(input);
  check_list(sendmail::unfold(input));

  std::vector<std::string> args;
  std::string_view message = input;
  if (const auto end = input.find(std::string_view("\0\0", 2)); end != std::string_view::npos) {
    std::string_view rest = input.substr(0, end);
    message = input.substr(end + 2);
    while (args.size() < max_arguments) {
      const auto nul = rest.find('\0');
      args.emplace_back(rest.substr(0, nul));
      if (nul == std::string_view::npos) break;
      rest.remove_prefix(nul + 1);
    }
  } else {
    args = {"-t", "-i"};
  }

  const auto parsed = sendmail::parse_arguments(args);
  check(parsed.value.has_value() == parsed.error.empty());
  if (!parsed.value) return 0;
  const sendmail::environment env{"cron", std::string(domain), "Mon, 30 Nov 2026 08:00:00 +0000",
                                  "<1.abc@relay.example>"};
  const auto envelope = sendmail::command_line_envelope(*parsed.value, env);
  if (envelope.value) {
    if (!envelope.value->sender.empty()) check_mailbox(envelope.value->sender);
    for (const auto& m : envelope.value->recipients) check_mailbox(m);
  }
  const auto prepared = sendmail::prepare(*parsed.value, message, env);
  if (!prepared.value) {
    check(prepared.status == sendmail::exit_bad_address ||
          prepared.status == sendmail::exit_dataerr);
    // A command line refused alone is refused with the message too.
    check(envelope.value || prepared.status == sendmail::exit_bad_address);
    return 0;
  }
  check(envelope.value.has_value());
  const auto& s = *prepared.value;
  check(!s.recipients.empty());
  if (!s.sender.empty()) check_mailbox(s.sender);
  check(sendmail::envelope_command(sendmail::envelope_verb::mail_from, s.sender).size() ==
        s.sender.size() + 12);
  for (const auto& m : s.recipients) check_mailbox(m);
  check_payload(s.content);
  return 0;
}
