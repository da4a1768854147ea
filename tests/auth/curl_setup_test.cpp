// The libcurl checks: an option libcurl refuses is an error naming it, and
// the libcurl this is built and run with (Debian 12's) passes the start check.
#include "auth/curl_setup.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace oauth_relay::auth {
namespace {

using handle_ptr = std::unique_ptr<CURL, void (*)(CURL*)>;

handle_ptr handle() {
  return handle_ptr(curl_easy_init(), curl_easy_cleanup);
}

TEST(curl_setup, a_refused_option_is_an_error_naming_it) {
  auto h = handle();
  ASSERT_TRUE(h);
  try {
    OAUTH_RELAY_SETOPT(h.get(), CURLOPT_PROTOCOLS_STR, "no-such-protocol");
    FAIL() << "libcurl took an unknown protocol";
  } catch (const curl_setup_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("libcurl refused CURLOPT_PROTOCOLS_STR: ", 0), 0u)
        << e.what();
  }
  EXPECT_THROW(OAUTH_RELAY_SETOPT(h.get(), CURLOPT_SSLVERSION, 999L), curl_setup_error);
  EXPECT_NO_THROW(OAUTH_RELAY_SETOPT(h.get(), CURLOPT_PROTOCOLS_STR, "https"));
}

TEST(curl_setup, the_libcurl_in_use_can_restrict_protocols_and_verify) {
  EXPECT_EQ(libcurl_problem(), "");
}

}  // namespace
}  // namespace oauth_relay::auth
