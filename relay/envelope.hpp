// What the SMTP session learns about one message besides its content: the
// sender, the account chosen for it, the recipients and their DSN parameters.
#pragma once

#include <string>
#include <vector>

#include "relay/smtp/parser.hpp"

namespace oauth_relay::relay {

struct recipient {
  std::string address;
  smtp::rcpt_parameters params;
};

struct envelope {
  std::string sender;   // empty for the null reverse-path
  std::string account;  // the Google account that will send it
  smtp::mail_parameters params;
  std::vector<recipient> recipients;
};

// A message the relay writes itself (a bounce), stored by the spool in the
// same transaction as the delivery record that caused it.
struct generated_message {
  envelope env;
  std::string content;
};

}  // namespace oauth_relay::relay
