// The SMTP server dialogue as pure code: takes command lines, returns replies
// and what the session must do next. The whole command set is one switch in
// on_command() (protocol.cpp): for each verb a check (state, syntax, limits),
// then the action. No I/O, so it is unit-tested and fuzzed like the parser.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "relay/envelope.hpp"
#include "relay/smtp/reply.hpp"
#include "relay/smtp/sender_router.hpp"

namespace oauth_relay::relay {

// RFC 5321 §4.5.4.1 leaves the number of bad commands tolerated to the server;
// ten is Postfix's smtpd_hard_error_limit in spirit (it uses 20) and stops bots early.
inline constexpr int max_protocol_errors = 10;

struct protocol_settings {
  std::string hostname;
  std::uint64_t max_message_size = 0;
  std::size_t max_recipients = 0;
};

class smtp_protocol {
 public:
  enum class next { reply, start_data, close };
  struct outcome {
    smtp::reply reply;
    next then = next::reply;
  };

  smtp_protocol(protocol_settings settings, const sender_router& router);

  smtp::reply greeting() const;
  // One command line without its line ending.
  outcome on_command(std::string_view line);
  // A command line longer than smtp::max_command_line was received and discarded.
  outcome on_line_too_long();
  // The DATA phase ended, whatever its reply: the transaction is over.
  void end_data();

  const envelope& current_envelope() const { return envelope_; }
  const std::string& helo_name() const { return helo_; }
  bool esmtp() const { return esmtp_; }
  int errors() const { return errors_; }

 private:
  // RFC 5321 §4.1.4 ordering: greeting → HELO/EHLO → MAIL → RCPT… → DATA.
  enum class phase { connected, greeted, have_sender, have_recipients };

  outcome finish(smtp::reply reply, next then = next::reply);
  outcome on_helo(std::string_view argument, bool extended);
  outcome on_mail(std::string_view argument);
  outcome on_rcpt(std::string_view argument);
  outcome on_data(std::string_view argument);
  void reset_transaction();

  protocol_settings settings_;
  const sender_router& router_;
  phase phase_ = phase::connected;
  std::string helo_;
  bool esmtp_ = false;
  envelope envelope_;
  int errors_ = 0;
};

}  // namespace oauth_relay::relay
