// The permit rule (any one matching entry lets the client send as the
// account) and how the identity reads in the trace header.
#include "relay/smtp/client_identity.hpp"

#include <algorithm>

namespace oauth_relay::relay {

bool permitted(const config::permit_settings& permit, const client_identity& identity,
               const std::optional<std::string>& login) {
  if (login && std::find(permit.logins.begin(), permit.logins.end(), *login) != permit.logins.end())
    return true;
  if (!identity.uid) return false;
  const auto user = [&](const config::local_name& u) { return u.id == *identity.uid; };
  if (std::any_of(permit.local_users.begin(), permit.local_users.end(), user)) return true;
  return std::any_of(permit.local_groups.begin(), permit.local_groups.end(),
                     [&](const config::local_name& g) {
                       return std::find(identity.groups.begin(), identity.groups.end(), g.id) !=
                              identity.groups.end();
                     });
}

std::string received_comment(const client_identity& identity,
                             const std::optional<std::string>& login) {
  std::string out =
      identity.via == transport::unix_socket ? std::string("unix socket") : "[" + identity.ip + "]";
  if (identity.uid) out += " uid " + std::to_string(*identity.uid);
  if (login) out += " authenticated as " + *login;
  return out;
}

}  // namespace oauth_relay::relay
