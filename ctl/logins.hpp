// oauth-relayctl login add|remove|list: the SMTP AUTH logins in
// clients.logins_file, for devices and applications that insist on a user
// name and password (a printer, a NAS, a PHP mailer).
#pragma once

#include <string>

#include "ctl/common.hpp"

namespace oauth_relay::ctl {

// Adds NAME or changes its password: asked twice on the terminal without
// echo, or read once from standard input with `password_stdin`.
int run_login_add(const context& ctx, const std::string& name, bool password_stdin);
int run_login_remove(const context& ctx, const std::string& name);
// The names, their hash method and the accounts whose permit names them.
int run_login_list(const context& ctx);

}  // namespace oauth_relay::ctl
