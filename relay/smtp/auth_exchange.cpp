// The PLAIN and LOGIN exchanges. Every decoded response is wiped as soon as
// the name and password are taken out of it; replies follow RFC 4954 §4 and §6.
#include "relay/smtp/auth_exchange.hpp"

#include <algorithm>

#include "common/text.hpp"

namespace oauth_relay::relay {
namespace {

using smtp::make_reply;

// LOGIN's prompts, "Username:" and "Password:" in base64, as every client expects them.
constexpr std::string_view login_name_prompt = "VXNlcm5hbWU6";
constexpr std::string_view login_password_prompt = "UGFzc3dvcmQ6";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
           return lower(x) == lower(y);
         });
}

// A decoded response, wiped when it goes out of scope (never moved from: a
// moved-from short string keeps its bytes). RFC 4954 §4: "=" is an empty
// initial response; anything else is base64.
struct decoded {
  explicit decoded(std::string_view response)
      : text(response == "=" ? std::optional<std::string>("") : base64_decode(response)) {}
  ~decoded() {
    if (text) wipe(*text);
  }
  decoded(const decoded&) = delete;
  decoded& operator=(const decoded&) = delete;
  std::optional<std::string> text;
};

}  // namespace

auth_exchange::step auth_exchange::fail(smtp::reply reply) {
  state_ = state::idle;
  pending_ = {};
  return {result::failed, std::move(reply)};
}

auth_exchange::step auth_exchange::ready() {
  state_ = state::ready;
  return {result::verify, {}};
}

credentials auth_exchange::take() {
  state_ = state::idle;
  return std::move(pending_);
}

auth_exchange::step auth_exchange::start(std::string_view argument) {
  pending_ = {};
  const auto space = argument.find(' ');
  const std::string_view mechanism = argument.substr(0, space);
  std::optional<std::string_view> initial;
  if (space != std::string_view::npos) initial = argument.substr(space + 1);
  if (mechanism.empty() || (initial && (initial->empty() || initial->find(' ') != initial->npos))) {
    return fail(make_reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]"));
  }
  if (iequals(mechanism, "PLAIN")) {
    if (initial) return plain(*initial);
    state_ = state::plain_response;
    // RFC 4954 §4: an empty challenge asks for the initial response.
    return {result::challenge, make_reply(334, "", "")};
  }
  if (iequals(mechanism, "LOGIN")) {
    // Some clients send the user name with AUTH LOGIN; then only the password is asked for.
    if (initial) return login_name(*initial);
    state_ = state::login_name;
    return {result::challenge, make_reply(334, "", login_name_prompt)};
  }
  return fail(make_reply(504, "5.5.4", "Unrecognized authentication type"));
}

auth_exchange::step auth_exchange::respond(std::string_view line) {
  // RFC 4954 §4: "*" cancels the exchange.
  if (line == "*") return fail(make_reply(501, "5.0.0", "Authentication cancelled"));
  switch (state_) {
    case state::plain_response:
      return plain(line);
    case state::login_name:
      return login_name(line);
    case state::login_password:
      return login_password(line);
    case state::idle:
    case state::ready:
      break;
  }
  return fail(make_reply(503, "5.5.1", "No authentication exchange in progress"));
}

auth_exchange::step auth_exchange::line_too_long() {
  return fail(make_reply(500, "5.5.6", "Authentication exchange line is too long"));
}

auth_exchange::step auth_exchange::plain(std::string_view response) {
  const decoded message(response);
  if (!message.text) return fail(make_reply(501, "5.5.2", "Cannot decode response"));
  // RFC 4616 §2: [authzid] NUL authcid NUL passwd.
  const std::string_view m = *message.text;
  const auto first = m.find('\0');
  const auto second = first == m.npos ? m.npos : m.find('\0', first + 1);
  if (second == m.npos || m.find('\0', second + 1) != m.npos) {
    return fail(make_reply(501, "5.5.2", "Malformed PLAIN response"));
  }
  const std::string_view authzid = m.substr(0, first);
  const std::string_view authcid = m.substr(first + 1, second - first - 1);
  const std::string_view password = m.substr(second + 1);
  if (authcid.empty() || password.empty()) {
    return fail(make_reply(501, "5.5.2", "Malformed PLAIN response"));
  }
  if (authcid.size() > max_credential_length || password.size() > max_credential_length ||
      authzid.size() > max_credential_length) {
    return fail(make_reply(501, "5.5.4", "Credentials too long"));
  }
  // Acting for another identity is not supported: the authzid, if given, must be the user.
  if (!authzid.empty() && authzid != authcid) {
    return fail(make_reply(535, "5.7.8", "Authentication credentials invalid"));
  }
  pending_.name = std::string(authcid);
  pending_.password = secret(password);
  return ready();
}

auth_exchange::step auth_exchange::login_name(std::string_view response) {
  const decoded name(response);
  if (!name.text) return fail(make_reply(501, "5.5.2", "Cannot decode response"));
  const std::string_view n = *name.text;
  if (n.empty() || n.find('\0') != n.npos) {
    return fail(make_reply(501, "5.5.2", "Malformed user name"));
  }
  if (n.size() > max_credential_length)
    return fail(make_reply(501, "5.5.4", "Credentials too long"));
  pending_.name = std::string(n);
  state_ = state::login_password;
  return {result::challenge, make_reply(334, "", login_password_prompt)};
}

auth_exchange::step auth_exchange::login_password(std::string_view response) {
  const decoded password(response);
  if (!password.text) return fail(make_reply(501, "5.5.2", "Cannot decode response"));
  const std::string_view p = *password.text;
  if (p.empty() || p.find('\0') != p.npos) {
    return fail(make_reply(501, "5.5.2", "Malformed password"));
  }
  if (p.size() > max_credential_length)
    return fail(make_reply(501, "5.5.4", "Credentials too long"));
  pending_.password = secret(p);
  return ready();
}

}  // namespace oauth_relay::relay
