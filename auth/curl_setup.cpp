// The start-up check of libcurl: what it reports of itself, and whether it
// takes the options every request depends on.
#include "auth/curl_setup.hpp"

#include <cstring>
#include <memory>

namespace oauth_relay::auth {
namespace {

// CURLOPT_PROTOCOLS_STR and CURLOPT_REDIR_PROTOCOLS_STR arrived in 7.85.0
// (Debian 12 has 7.88.1); before them only the deprecated bitmask existed.
constexpr unsigned int min_version = 0x075500;

bool lists_protocol(const curl_version_info_data* info, const char* name) {
  for (const char* const* p = info->protocols; p != nullptr && *p != nullptr; ++p) {
    if (std::strcmp(*p, name) == 0) return true;
  }
  return false;
}

}  // namespace

std::string libcurl_problem() {
  const curl_version_info_data* info = curl_version_info(CURLVERSION_NOW);
  const std::string version = info && info->version ? info->version : "unknown";
  const std::string fix = "; install Debian 12's libcurl4 (7.88) or newer";
  if (info == nullptr || info->version_num < min_version) {
    return "libcurl " + version +
           " is too old: it cannot keep requests to https (CURLOPT_PROTOCOLS_STR needs 7.85)" + fix;
  }
  if ((info->features & CURL_VERSION_SSL) == 0 || !lists_protocol(info, "https")) {
    return "libcurl " + version + " was built without TLS (no https)" + fix;
  }
  // What the version says, tried: each option every request sets.
  std::unique_ptr<CURL, void (*)(CURL*)> handle(curl_easy_init(), curl_easy_cleanup);
  if (!handle) return "libcurl " + version + " cannot create a handle (out of memory?)";
  try {
    OAUTH_RELAY_SETOPT(handle.get(), CURLOPT_PROTOCOLS_STR, "https");
    OAUTH_RELAY_SETOPT(handle.get(), CURLOPT_REDIR_PROTOCOLS_STR, "https");
    OAUTH_RELAY_SETOPT(handle.get(), CURLOPT_SSL_VERIFYPEER, 1L);
    OAUTH_RELAY_SETOPT(handle.get(), CURLOPT_SSL_VERIFYHOST, 2L);
    OAUTH_RELAY_SETOPT(handle.get(), CURLOPT_SSLVERSION,
                       static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  } catch (const curl_setup_error& e) {
    return "libcurl " + version + ": " + e.what() + fix;
  }
  return {};
}

}  // namespace oauth_relay::auth
