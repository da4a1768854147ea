// libFuzzer target for the whole server dialogue (relay/smtp/protocol with
// auth_exchange, the permit rule and the router): the first octet picks the
// settings and the client's identity (and, with its high bit, local domains
// and aliases), the rest is command lines. "<ok>" and
// "<bad>" answer a credentials check, and every STARTTLS that asks for a
// handshake gets one. The protocol must never crash, every reply must be
// one well-formed reply, and its invariants must hold.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/smtp/protocol.hpp"

namespace relay = oauth_relay::relay;
namespace config = oauth_relay::config;

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

const std::vector<config::account_settings>& accounts() {
  static const auto all = [] {
    config::account_settings shop;
    shop.address = "shop@example.com";
    shop.senders = {"shop@example.com", "*@shop.example.com"};
    shop.permit = config::permit_settings{{{"www-data", 33}}, {{"staff", 50}}, {"scanner"}};
    config::account_settings fallback;
    fallback.address = "ops@example.com";
    fallback.is_default = true;
    return std::vector<config::account_settings>{shop, fallback};
  }();
  return all;
}

void check_reply(const oauth_relay::smtp::reply& r) {
  check(r.code >= 200 && r.code <= 599);
  const std::string wire = r.wire();
  check(wire.size() >= 5 && wire.compare(wire.size() - 2, 2, "\r\n") == 0);
  // No reply line holds a CR or LF of its own: the framing cannot break.
  std::size_t at = 0;
  while ((at = wire.find('\n', at)) != std::string::npos) {
    check(at > 0 && wire[at - 1] == '\r');
    ++at;
  }
  check(wire.find('\r') == wire.find("\r\n"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  relay::protocol_settings settings;
  settings.hostname = "relay.test";
  settings.max_message_size = 1000;
  settings.max_recipients = 3;
  settings.starttls = mode & 1;
  settings.logins = mode & 2;
  settings.require_login = mode & 4;
  relay::client_identity identity;
  identity.via = static_cast<relay::transport>((mode >> 3) % 3);
  if (identity.via != relay::transport::unix_socket) identity.ip = "127.0.0.1";
  if (mode & 0x20) identity.uid = 33;
  if (mode & 0x40) identity.groups = {50};
  static const relay::sender_router router(accounts());
  // With the high bit: local domains and aliases (bare names, expansion, 550 5.1.1).
  static const auto local =
      relay::local_addresses::build(
          {"localhost", "relay.test"},
          {{"root", {"admin@example.com"}, "f", 1},
           {"postmaster", {"root", "pm@example.com"}, "f", 2},
           {"team", {"a@example.com", "b@example.com", "c@example.com"}, "f", 3}},
          3)
          .table;
  if (mode & 0x80) settings.local = local.get();
  relay::smtp_protocol protocol(settings, router, identity);

  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  bool closed = false;
  bool awaiting_check = false;
  while (!rest.empty() && !closed) {
    const auto newline = rest.find('\n');
    std::string_view line = rest.substr(0, newline);
    rest.remove_prefix(newline == std::string_view::npos ? rest.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    relay::smtp_protocol::outcome outcome;
    if (awaiting_check) {
      // The session answers every check before it reads another line.
      const auto given = protocol.take_credentials();
      check(!given.name.empty() && !given.password.empty());
      check(given.name.size() <= relay::max_credential_length);
      check(given.password.size() <= relay::max_credential_length);
      outcome = protocol.on_credentials_checked(line == "<ok>", given.name);
      awaiting_check = false;
    } else if (line.size() > oauth_relay::smtp::max_command_line) {
      outcome = protocol.on_line_too_long();
    } else {
      outcome = protocol.on_command(line);
    }
    using next = relay::smtp_protocol::next;
    switch (outcome.then) {
      case next::check_credentials:
        check(settings.logins && protocol.auth_offered());
        check(!protocol.login());
        awaiting_check = true;
        continue;
      case next::start_tls:
        check(outcome.reply.code == 220 && settings.starttls && !protocol.tls_active());
        check(identity.via != relay::transport::unix_socket);
        protocol.on_tls_started();
        check(protocol.tls_active() && !protocol.login() && protocol.helo_name().empty());
        break;
      case next::start_data: {
        const auto& env = protocol.current_envelope();
        check(!env.recipients.empty() && env.recipients.size() <= settings.max_recipients);
        // No local address is ever stored: each became its aliases or was refused.
        for (const auto& r : env.recipients) {
          if (settings.local) {
            check(settings.local->expand(r.address).what ==
                  relay::local_addresses::expansion::kind::not_local);
          }
        }
        if (settings.local) check(env.sender.empty() || env.sender.find('@') != std::string::npos);
        check(!settings.require_login || protocol.login());
        protocol.end_data();
        break;
      }
      case next::close:
        closed = true;
        break;
      case next::reply:
        break;
    }
    check_reply(outcome.reply);
    // A refusal for the permit names the account the sender routes to; its
    // reply is the 550, or the 421 of a session closed for too many errors.
    if (outcome.refused) {
      check(!outcome.refused->account.empty());
      check(outcome.reply.code == 550 || (outcome.reply.code == 421 && closed));
    }
    if (protocol.login()) check(settings.logins);
  }
  return 0;
}
