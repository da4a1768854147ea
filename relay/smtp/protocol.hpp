// The SMTP server dialogue as pure code: takes command lines, returns replies
// and what the session must do next. The whole command set is one switch in
// on_command() (protocol.cpp): for each verb a check (state, syntax, limits),
// then the action. A local recipient (root) becomes its aliases at RCPT.
// Who the client is (its local identity, TLS, its login)
// comes in as values; checking a password or starting TLS is a next step the
// session performs. No I/O, so it is unit-tested and fuzzed like the parser.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "relay/envelope.hpp"
#include "relay/smtp/auth_exchange.hpp"
#include "relay/smtp/client_identity.hpp"
#include "relay/smtp/local_addresses.hpp"
#include "relay/smtp/reply.hpp"
#include "relay/smtp/sender_router.hpp"

namespace oauth_relay::relay {

// RFC 5321 §4.5.4.1 leaves the number of bad commands tolerated to the server;
// ten is Postfix's smtpd_hard_error_limit in spirit (it uses 20) and stops bots early.
inline constexpr int max_protocol_errors = 10;
// Failed logins before the session is closed with 421: enough for a typo or
// two, few enough that guessing needs a new connection (and its delays) every
// third try.
inline constexpr int max_auth_failures = 3;

struct protocol_settings {
  std::string hostname;
  std::uint64_t max_message_size = 0;
  std::size_t max_recipients = 0;
  bool starttls = false;       // `tls` is set: STARTTLS on TCP sessions
  bool logins = false;         // clients.logins_file is set: AUTH on secure sessions
  bool require_login = false;  // clients.require_login
  // local_domains and aliases: bare names are qualified, local recipients
  // expanded or refused. Owned by whoever owns the router; nothing: every
  // address is taken as it is (and a bare name refused).
  const local_addresses* local = nullptr;
};

class smtp_protocol {
 public:
  enum class next {
    reply,
    start_data,
    close,
    // Send the reply (220), discard anything the client sent after STARTTLS,
    // do the TLS handshake, then call on_tls_started().
    start_tls,
    // No reply yet: take_credentials(), check them, then call
    // on_credentials_checked() (after a delay when they were wrong).
    check_credentials,
  };
  struct outcome {
    outcome(smtp::reply r = {}, next t = next::reply) : reply(std::move(r)), then(t) {}
    smtp::reply reply;
    next then = next::reply;
    // The line held a secret (AUTH's argument or an answer to its 334):
    // the session wipes it from its buffer.
    bool secret_line = false;
    // MAIL was refused because the client is not in the permit of the
    // account its sender routes to: for the log, never for the reply.
    struct refusal {
      std::string sender;
      std::string account;
    };
    std::optional<refusal> refused;
  };

  smtp_protocol(protocol_settings settings, const sender_router& router,
                client_identity identity = {});

  smtp::reply greeting() const;
  // One command line without its line ending.
  outcome on_command(std::string_view line);
  // A command line longer than smtp::max_command_line was received and discarded.
  outcome on_line_too_long();
  // The DATA phase ended, whatever its reply: the transaction is over.
  void end_data();
  // The handshake after STARTTLS succeeded: RFC 3207 §4.2, the client starts
  // over with EHLO and nothing it said before counts.
  void on_tls_started();
  // The user's groups, looked up after the session started (user_groups()).
  void learned_groups(std::vector<std::uint32_t> groups);
  // After next::check_credentials: the credentials the client gave, once.
  credentials take_credentials() { return auth_.take(); }
  // Their check: 235, or 535 (421 and close after max_auth_failures).
  outcome on_credentials_checked(bool valid, const std::string& name);

  const envelope& current_envelope() const { return envelope_; }
  const std::string& helo_name() const { return helo_; }
  bool esmtp() const { return esmtp_; }
  int errors() const { return errors_; }
  const client_identity& identity() const { return identity_; }
  bool tls_active() const { return tls_active_; }
  const std::optional<std::string>& login() const { return login_; }
  // AUTH is offered: logins exist and the session is TLS, loopback or unix.
  bool auth_offered() const;
  // The RFC 3848 / RFC 6531 "with" keyword of the Received: header.
  std::string received_with() const;

 private:
  // RFC 5321 §4.1.4 ordering: greeting → HELO/EHLO → MAIL → RCPT… → DATA.
  enum class phase { connected, greeted, have_sender, have_recipients };

  outcome finish(smtp::reply reply, next then = next::reply);
  outcome on_helo(std::string_view argument, bool extended);
  outcome on_mail(std::string_view argument);
  outcome on_rcpt(std::string_view argument);
  outcome on_data(std::string_view argument);
  outcome on_starttls(std::string_view argument);
  outcome on_auth(std::string_view argument);
  outcome on_auth_step(auth_exchange::step step);
  outcome auth_failed(smtp::reply reply);
  bool starttls_offered() const;
  bool has_recipient(std::string_view address) const;
  void reset_transaction();

  protocol_settings settings_;
  const sender_router& router_;
  client_identity identity_;
  phase phase_ = phase::connected;
  std::string helo_;
  bool esmtp_ = false;
  bool tls_active_ = false;
  std::optional<std::string> login_;
  auth_exchange auth_;
  int auth_failures_ = 0;
  envelope envelope_;
  int errors_ = 0;
};

}  // namespace oauth_relay::relay
