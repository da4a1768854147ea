// oauth-relayctl authorize and import: the two ways a refresh token gets
// into the token store.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "config/provider.hpp"
#include "ctl/common.hpp"

namespace oauth_relay::ctl {

// Google's consent screen rarely takes more than a minute; five leave time to
// set up an SSH port forward.
inline constexpr std::chrono::seconds default_consent_timeout{300};

struct authorize_options {
  std::string address;
  bool no_browser = false;
  std::uint16_t port = 0;  // 0: any free port
  std::chrono::seconds timeout = default_consent_timeout;
  bool device = false;  // --device: Microsoft's device code flow instead of the loopback redirect
};

// The loopback flow: prints the consent URL, waits for the redirect on
// 127.0.0.1 or a pasted redirect URL on standard input, exchanges the code,
// checks the consenting account and stores the refresh token. Returns the
// exit status; throws failure.
int run_authorize(const context& ctx, const authorize_options& options);

// The address `oauth-relayctl test` takes for a service account: the one
// given, unless that is a domain pattern rather than a mailbox.
std::string mailbox_to_test(const std::string& given);

// The device code flow (RFC 8628) for a Microsoft account (authorize_device.cpp):
// prints the verification address and the code, polls at the interval the
// endpoint gives, checks the account that signed in and stores the refresh token.
int run_device_authorize(const context& ctx, const config::provider& provider,
                         const std::string& address);

struct import_options {
  std::string address;
  std::string file;  // "-" is standard input
  bool verify = true;
};

// Stores a refresh token obtained elsewhere, after checking it with one
// refresh unless told not to. Returns the exit status; throws failure.
int run_import(const context& ctx, const import_options& options);

}  // namespace oauth_relay::ctl
