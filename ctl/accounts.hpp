// oauth-relayctl accounts and test: what the token store says about each
// account, and the "test the connection" button.
#pragma once

#include <string>

#include "ctl/common.hpp"

namespace oauth_relay::ctl {

// Every configured account (and any stored account no longer configured):
// token state, access-token expiry, last delivery, last error. Returns 0.
int run_accounts(const context& ctx, bool json);

// Refreshes the access token, connects to the upstream with the configured
// TLS, authenticates with XOAUTH2 and quits, printing each step; throws
// failure with the cause and fix of the first step that fails.
int run_test(const context& ctx, const std::string& address);

}  // namespace oauth_relay::ctl
