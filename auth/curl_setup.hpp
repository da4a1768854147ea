// libcurl options set with their result checked, and the check at start that
// the libcurl in use can keep requests to the protocols and TLS we ask for.
#pragma once

#include <curl/curl.h>

#include <stdexcept>
#include <string>

namespace oauth_relay::auth {

// The libcurl in use refused an option: a request made without it could go
// out less safe than asked (another protocol, an unverified peer), so none is.
class curl_setup_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// curl_easy_setopt, or curl_setup_error naming `name` and libcurl's reason.
template <typename T>
void set_option(CURL* handle, CURLoption option, const char* name, T value) {
  const CURLcode rc = curl_easy_setopt(handle, option, value);
  if (rc != CURLE_OK) {
    throw curl_setup_error(std::string("libcurl refused ") + name + ": " + curl_easy_strerror(rc));
  }
}

// Why the libcurl in use cannot be trusted with our requests: older than
// 7.85 (no CURLOPT_PROTOCOLS_STR, so no way to keep a request to https),
// built without TLS or without https, or refusing to verify peers. Empty
// when it is fine. Called once at start by oauth-relayd and oauth-relayctl.
std::string libcurl_problem();

}  // namespace oauth_relay::auth

// set_option with the option's own name in the error.
#define OAUTH_RELAY_SETOPT(handle, option, value) \
  ::oauth_relay::auth::set_option(handle, option, #option, value)
