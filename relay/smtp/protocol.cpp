// The command set of the relay's SMTP listener, one verb per branch: check
// (state, syntax, limits) then act. Replies follow RFC 5321 §4.2 and the
// enhanced codes of RFC 3463; STARTTLS RFC 3207, AUTH RFC 4954.
#include "relay/smtp/protocol.hpp"

#include <algorithm>
#include <variant>

namespace oauth_relay::relay {

using smtp::make_reply;
using smtp::reply;

namespace {

// RFC 3461 §4: xtext, "+XX" for '+', '=' and any octet outside 33-126.
std::string xtext(std::string_view text) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == '+' || c == '=') {
      out += '+';
      out += hex[u >> 4];
      out += hex[u & 0xF];
    } else {
      out += c;
    }
  }
  return out;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    return lower(x) == lower(y);
  });
}

}  // namespace

smtp_protocol::smtp_protocol(protocol_settings settings, const sender_router& router,
                             client_identity identity)
    : settings_(std::move(settings)), router_(router), identity_(std::move(identity)) {}

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

bool smtp_protocol::auth_offered() const {
  return settings_.logins && (tls_active_ || identity_.local());
}

bool smtp_protocol::starttls_offered() const {
  return settings_.starttls && !tls_active_ && identity_.via != transport::unix_socket;
}

std::string smtp_protocol::received_with() const {
  // RFC 3848 §2 and RFC 6531 §3.7.3: S for TLS, A for an authenticated client.
  std::string with = envelope_.params.smtputf8 ? "UTF8SMTP" : (esmtp_ ? "ESMTP" : "SMTP");
  if (with == "SMTP") return with;
  if (tls_active_) with += "S";
  if (login_) with += "A";
  return with;
}

smtp_protocol::outcome smtp_protocol::on_command(std::string_view line) {
  if (auth_.active()) {
    auto result = on_auth_step(auth_.respond(line));
    result.secret_line = true;
    return result;
  }
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
      return on_starttls(cmd.argument);
    case verb::auth: {
      auto result = on_auth(cmd.argument);
      result.secret_line = true;
      return result;
    }
    case verb::bdat:
      return finish(make_reply(502, "5.5.1", "Command not implemented"));
    case verb::unknown:
      break;
  }
  return finish(make_reply(500, "5.5.2", "Command not recognized"));
}

smtp_protocol::outcome smtp_protocol::on_line_too_long() {
  if (auth_.active()) return on_auth_step(auth_.line_too_long());
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
             "DSN"};
  if (starttls_offered()) r.lines.push_back("STARTTLS");
  if (auth_offered()) r.lines.push_back("AUTH PLAIN LOGIN");
  r.lines.push_back("HELP");
  return finish(std::move(r));
}

smtp_protocol::outcome smtp_protocol::on_mail(std::string_view argument) {
  if (phase_ == phase::connected)
    return finish(make_reply(503, "5.5.1", "Send HELO or EHLO first"));
  if (phase_ != phase::greeted) return finish(make_reply(503, "5.5.1", "Sender already specified"));
  // RFC 4954 §6: 530 to a command the server will not take before AUTH.
  if (settings_.require_login && !login_) {
    return finish(make_reply(530, "5.7.0", "Authentication required"));
  }
  auto parsed = smtp::parse_mail_from(argument, settings_.local != nullptr);
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
  // A bare name is qualified as Postfix's append_at_myorigin does.
  if (settings_.local && !mail.address.empty())
    mail.address = settings_.local->qualify(mail.address);
  // `senders` routes; `permit` authorizes. Both refusals read the same, so
  // the reply says neither whether an account takes this sender nor which rule failed.
  const auto* route = router_.find(mail.address);
  const bool refused = route && route->permit && !permitted(*route->permit, identity_, login_);
  if (!route || refused) {
    auto result = finish(make_reply(
        550, "5.7.1", "Sender <" + mail.address + "> is not allowed to send through this relay"));
    if (refused) result.refused = outcome::refusal{mail.address, route->account};
    return result;
  }
  envelope_.sender = std::move(mail.address);
  envelope_.params = std::move(mail.params);
  envelope_.account = route->account_for(envelope_.sender);
  phase_ = phase::have_sender;
  return finish(make_reply(250, "2.1.0", "Ok"));
}

smtp_protocol::outcome smtp_protocol::on_rcpt(std::string_view argument) {
  if (phase_ != phase::have_sender && phase_ != phase::have_recipients) {
    return finish(make_reply(503, "5.5.1", "Need MAIL before RCPT"));
  }
  auto parsed =
      smtp::parse_rcpt_to(argument, envelope_.params.smtputf8, settings_.local != nullptr);
  if (auto* error = std::get_if<reply>(&parsed)) return finish(std::move(*error));
  auto& rcpt = std::get<smtp::rcpt_to>(parsed);
  if (!esmtp_ && (rcpt.params.notify.specified || !rcpt.params.orcpt.empty())) {
    return finish(make_reply(555, "5.5.4", "Parameters need EHLO"));
  }
  std::vector<std::string> addresses;
  if (!settings_.local) {
    addresses.push_back(std::move(rcpt.address));
  } else {
    const std::string address = settings_.local->qualify(rcpt.address);
    auto expansion = settings_.local->expand(address);
    using kind = local_addresses::expansion::kind;
    switch (expansion.what) {
      case kind::not_local:
        addresses.push_back(address);
        break;
      case kind::unknown:
        // Refused now: forwarded, it would only come back as a bounce to a
        // sender that is often local too.
        return finish(make_reply(550, "5.1.1",
                                 "<" + address + ">: no such local user here (no alias maps it)"));
      case kind::expanded:
        // RFC 3461 §4.2: the original recipient, for the reports about each address.
        if (rcpt.params.orcpt.empty()) rcpt.params.orcpt = "rfc822;" + xtext(address);
        // An address the transaction has already (root and postmaster to
        // one person) is delivered once.
        for (auto& a : expansion.addresses) {
          if (!has_recipient(a)) addresses.push_back(std::move(a));
        }
        break;
    }
  }
  if (envelope_.recipients.size() + addresses.size() > settings_.max_recipients) {
    // RFC 5321 §4.5.3.1.10: 452 for too many recipients, so the client sends
    // the rest later; an alias counts as the addresses it stands for.
    return finish(make_reply(452, "4.5.3", "Too many recipients"));
  }
  for (auto& a : addresses) envelope_.recipients.push_back({std::move(a), rcpt.params});
  phase_ = phase::have_recipients;
  return finish(make_reply(250, "2.1.5", "Ok"));
}

bool smtp_protocol::has_recipient(std::string_view address) const {
  return std::any_of(envelope_.recipients.begin(), envelope_.recipients.end(),
                     [&](const recipient& r) { return iequals_ascii(r.address, address); });
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

smtp_protocol::outcome smtp_protocol::on_starttls(std::string_view argument) {
  if (!settings_.starttls || identity_.via == transport::unix_socket) {
    return finish(make_reply(502, "5.5.1", "Command not implemented"));
  }
  if (tls_active_) return finish(make_reply(503, "5.5.1", "TLS already active"));
  if (!argument.empty()) return finish(make_reply(501, "5.5.4", "Syntax: STARTTLS"));
  if (phase_ == phase::connected) return finish(make_reply(503, "5.5.1", "Send EHLO first"));
  if (phase_ != phase::greeted) {
    return finish(make_reply(503, "5.5.1", "STARTTLS not allowed during a mail transaction"));
  }
  return finish(make_reply(220, "2.0.0", "Ready to start TLS"), next::start_tls);
}

void smtp_protocol::learned_groups(std::vector<std::uint32_t> groups) {
  for (auto g : groups) {
    if (std::find(identity_.groups.begin(), identity_.groups.end(), g) == identity_.groups.end())
      identity_.groups.push_back(g);
  }
}

void smtp_protocol::on_tls_started() {
  tls_active_ = true;
  phase_ = phase::connected;
  helo_.clear();
  esmtp_ = false;
  envelope_ = envelope{};
  login_.reset();
  auth_ = auth_exchange{};
}

smtp_protocol::outcome smtp_protocol::on_auth(std::string_view argument) {
  if (!settings_.logins) return finish(make_reply(502, "5.5.1", "Command not implemented"));
  if (phase_ == phase::connected || !esmtp_) {
    return finish(make_reply(503, "5.5.1", "Send EHLO first"));
  }
  // RFC 4954 §6: 538 when the mechanism needs an encrypted connection; here
  // every mechanism does, unless the client is on this machine.
  if (!auth_offered()) {
    return finish(
        make_reply(538, "5.7.11", "Encryption required for requested authentication mechanism"));
  }
  if (login_) return finish(make_reply(503, "5.5.1", "Already authenticated"));
  if (phase_ != phase::greeted) {
    return finish(make_reply(503, "5.5.1", "AUTH not allowed during a mail transaction"));
  }
  return on_auth_step(auth_.start(argument));
}

smtp_protocol::outcome smtp_protocol::on_auth_step(auth_exchange::step step) {
  switch (step.what) {
    case auth_exchange::result::challenge:
      return finish(std::move(step.reply));
    case auth_exchange::result::verify:
      return {{}, next::check_credentials};
    case auth_exchange::result::failed:
      break;
  }
  if (step.reply.code == 535) return auth_failed(std::move(step.reply));
  return finish(std::move(step.reply));
}

smtp_protocol::outcome smtp_protocol::auth_failed(reply r) {
  if (++auth_failures_ >= max_auth_failures) {
    return {make_reply(421, "4.7.0",
                       settings_.hostname + " Too many failed logins, closing connection"),
            next::close};
  }
  return finish(std::move(r));
}

smtp_protocol::outcome smtp_protocol::on_credentials_checked(bool valid, const std::string& name) {
  if (!valid) return auth_failed(make_reply(535, "5.7.8", "Authentication credentials invalid"));
  login_ = name;
  return finish(make_reply(235, "2.7.0", "Authentication successful"));
}

}  // namespace oauth_relay::relay
