// The command set of the relay's SMTP listener, one verb per branch: check
// (state, syntax, limits) then act. Replies follow RFC 5321 §4.2 and the
// enhanced codes of RFC 3463.
#include "relay/smtp/protocol.hpp"

#include <algorithm>
#include <variant>

namespace oauth_relay::relay {

using smtp::make_reply;
using smtp::reply;

smtp_protocol::smtp_protocol(protocol_settings settings, const sender_router& router)
    : settings_(std::move(settings)), router_(router) {}

reply smtp_protocol::greeting() const {
  return make_reply(220, "", settings_.hostname + " ESMTP oauth-relay");
}

smtp_protocol::outcome smtp_protocol::finish(reply r, next then) {
  if (r.permanent() && then != next::close) {
    if (++errors_ >= max_protocol_errors) {
      // The last error's reply is replaced: the client is told why it is cut off.
      return {make_reply(421, "4.7.0", settings_.hostname + " Too many errors, closing connection"),
              next::close};
    }
  }
  return {std::move(r), then};
}

void smtp_protocol::reset_transaction() {
  envelope_ = envelope{};
  if (phase_ != phase::connected) phase_ = phase::greeted;
}

smtp_protocol::outcome smtp_protocol::on_command(std::string_view line) {
  const auto parsed = smtp::parse_command(line);
  const auto& cmd = parsed.cmd;
  using smtp::verb;
  switch (cmd.name) {
    case verb::ehlo:
      return on_helo(cmd.argument, true);
    case verb::helo:
      return on_helo(cmd.argument, false);
    case verb::mail:
      if (!parsed.argument_ok)
        return finish(make_reply(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
      return on_mail(cmd.argument);
    case verb::rcpt:
      if (!parsed.argument_ok) return finish(make_reply(501, "5.5.4", "Syntax: RCPT TO:<address>"));
      return on_rcpt(cmd.argument);
    case verb::data:
      return on_data(cmd.argument);
    case verb::rset:
      if (!cmd.argument.empty()) return finish(make_reply(501, "5.5.4", "Syntax: RSET"));
      reset_transaction();
      return finish(make_reply(250, "2.0.0", "Ok"));
    case verb::noop:
      return finish(make_reply(250, "2.0.0", "Ok"));
    case verb::quit:
      return finish(make_reply(221, "2.0.0", settings_.hostname + " closing connection"),
                    next::close);
    case verb::vrfy:
      // RFC 5321 §3.5.3: 252 when the server will accept the address but cannot verify it.
      return finish(make_reply(252, "2.5.0", "Cannot VRFY user, but will accept message"));
    case verb::expn:
      return finish(make_reply(502, "5.5.1", "EXPN not supported"));
    case verb::help:
      return finish(
          make_reply(214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP"));
    case verb::starttls:
    case verb::auth:
    case verb::bdat:
      return finish(make_reply(502, "5.5.1", "Command not implemented"));
    case verb::unknown:
      break;
  }
  return finish(make_reply(500, "5.5.2", "Command not recognized"));
}

smtp_protocol::outcome smtp_protocol::on_line_too_long() {
  return finish(make_reply(500, "5.5.2", "Line too long"));
}

smtp_protocol::outcome smtp_protocol::on_helo(std::string_view argument, bool extended) {
  if (!smtp::is_valid_helo(argument)) {
    const bool eight_bit = std::any_of(argument.begin(), argument.end(),
                                       [](char c) { return static_cast<unsigned char>(c) > 0x7F; });
    if (eight_bit) {
      return finish(make_reply(501, "5.5.4",
                               "The hostname must be ASCII (an international name in its xn-- "
                               "form, RFC 6531 section 3.7.1)"));
    }
    return finish(
        make_reply(501, "5.5.4", extended ? "Syntax: EHLO hostname" : "Syntax: HELO hostname"));
  }
  // RFC 5321 §4.1.4: EHLO/HELO mid-session resets the transaction like RSET.
  envelope_ = envelope{};
  phase_ = phase::greeted;
  helo_ = std::string(argument);
  esmtp_ = extended;
  if (!extended) return finish(make_reply(250, "", settings_.hostname));
  reply r;
  r.code = 250;
  r.lines = {settings_.hostname,
             "PIPELINING",
             "SIZE " + std::to_string(settings_.max_message_size),
             "8BITMIME",
             "SMTPUTF8",
             "ENHANCEDSTATUSCODES",
             "DSN",
             "HELP"};
  return finish(std::move(r));
}

smtp_protocol::outcome smtp_protocol::on_mail(std::string_view argument) {
  if (phase_ == phase::connected)
    return finish(make_reply(503, "5.5.1", "Send HELO or EHLO first"));
  if (phase_ != phase::greeted) return finish(make_reply(503, "5.5.1", "Sender already specified"));
  auto parsed = smtp::parse_mail_from(argument);
  if (auto* error = std::get_if<reply>(&parsed)) return finish(std::move(*error));
  auto& mail = std::get<smtp::mail_from>(parsed);
  if (!esmtp_ && (mail.params.size || mail.params.body != smtp::body_type::unspecified ||
                  mail.params.smtputf8 || mail.params.ret != smtp::dsn_ret::unspecified ||
                  !mail.params.envid.empty())) {
    return finish(make_reply(555, "5.5.4", "Parameters need EHLO"));
  }
  if (mail.params.size && *mail.params.size > settings_.max_message_size) {
    return finish(make_reply(
        552, "5.3.4",
        "Message size exceeds fixed limit of " + std::to_string(settings_.max_message_size)));
  }
  auto account = router_.route(mail.address);
  if (!account) {
    return finish(make_reply(
        550, "5.7.1", "Sender <" + mail.address + "> is not allowed to send through this relay"));
  }
  envelope_.sender = std::move(mail.address);
  envelope_.params = std::move(mail.params);
  envelope_.account = std::move(*account);
  phase_ = phase::have_sender;
  return finish(make_reply(250, "2.1.0", "Ok"));
}

smtp_protocol::outcome smtp_protocol::on_rcpt(std::string_view argument) {
  if (phase_ != phase::have_sender && phase_ != phase::have_recipients) {
    return finish(make_reply(503, "5.5.1", "Need MAIL before RCPT"));
  }
  auto parsed = smtp::parse_rcpt_to(argument, envelope_.params.smtputf8);
  if (auto* error = std::get_if<reply>(&parsed)) return finish(std::move(*error));
  auto& rcpt = std::get<smtp::rcpt_to>(parsed);
  if (!esmtp_ && (rcpt.params.notify.specified || !rcpt.params.orcpt.empty())) {
    return finish(make_reply(555, "5.5.4", "Parameters need EHLO"));
  }
  if (envelope_.recipients.size() >= settings_.max_recipients) {
    // RFC 5321 §4.5.3.1.10: 452 for too many recipients, so the client sends the rest later.
    return finish(make_reply(452, "4.5.3", "Too many recipients"));
  }
  envelope_.recipients.push_back({std::move(rcpt.address), std::move(rcpt.params)});
  phase_ = phase::have_recipients;
  return finish(make_reply(250, "2.1.5", "Ok"));
}

smtp_protocol::outcome smtp_protocol::on_data(std::string_view argument) {
  if (!argument.empty()) return finish(make_reply(501, "5.5.4", "Syntax: DATA"));
  if (phase_ == phase::have_sender) return finish(make_reply(554, "5.5.1", "No valid recipients"));
  if (phase_ != phase::have_recipients)
    return finish(make_reply(503, "5.5.1", "Need RCPT before DATA"));
  return finish(make_reply(354, "", "End data with <CR><LF>.<CR><LF>"), next::start_data);
}

void smtp_protocol::end_data() {
  reset_transaction();
}

}  // namespace oauth_relay::relay
