// SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms as a
// pure state machine: the AUTH argument and each response line in, a 334
// challenge, a final error reply, or "verify these credentials" out. The
// protocol decides whether AUTH may start; the session checks the password.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/secret.hpp"
#include "relay/smtp/reply.hpp"

namespace oauth_relay::relay {

// RFC 4616 §2: a server must take user names and passwords of up to 255
// octets; longer ones are refused before any hash is computed.
inline constexpr std::size_t max_credential_length = 255;

struct credentials {
  std::string name;
  secret password;
};

class auth_exchange {
 public:
  enum class result {
    challenge,  // send `reply` (334) and pass the next line to respond()
    verify,     // take() the credentials and check them
    failed,     // send `reply`; the exchange is over
  };
  struct step {
    result what = result::failed;
    smtp::reply reply;  // for challenge and failed
  };

  // The argument of "AUTH": a mechanism and an optional initial response.
  step start(std::string_view argument);
  // A line sent in answer to a 334 challenge.
  step respond(std::string_view line);
  // An answer longer than a command line was received and discarded.
  step line_too_long();

  bool active() const { return state_ != state::idle; }
  // After result::verify: the credentials, once; the exchange is then idle.
  credentials take();

 private:
  enum class state { idle, plain_response, login_name, login_password, ready };

  step plain(std::string_view response);
  step login_name(std::string_view response);
  step login_password(std::string_view response);
  step fail(smtp::reply reply);
  step ready();

  state state_ = state::idle;
  credentials pending_;
};

}  // namespace oauth_relay::relay
