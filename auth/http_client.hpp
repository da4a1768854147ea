// The seam between the token client and the network: one form-encoded POST.
// Tests and oauth-relayctl use the libcurl implementation against real TLS.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace oauth_relay::auth {

// Google answers the token endpoint within a second or two; these bound a
// hung connection so a refresh never holds a worker for long.
inline constexpr std::chrono::milliseconds default_connect_timeout{10'000};
inline constexpr std::chrono::milliseconds default_total_timeout{30'000};

struct http_options {
  std::chrono::milliseconds connect_timeout = default_connect_timeout;
  std::chrono::milliseconds total_timeout = default_total_timeout;
  // Trust anchors instead of the system store (oauth.ca_file).
  std::optional<std::filesystem::path> ca_file;
  // Polled during the transfer; when it turns true the request is abandoned.
  const std::atomic<bool>* cancel = nullptr;
};

struct http_response {
  long status = 0;    // the HTTP status; 0 when no HTTP exchange happened
  std::string body;   // the response body
  std::string error;  // transport error text (TLS, connect, timeout); empty if HTTP happened
};

using form_fields = std::vector<std::pair<std::string, std::string>>;

class http_client {
 public:
  virtual ~http_client() = default;
  // Thread-safe: called from several worker threads at once.
  virtual http_response post_form(const std::string& url, const form_fields& fields,
                                  const http_options& options) = 0;
};

// libcurl easy, one handle per request: HTTPS only, peer and host always
// verified, no redirects followed.
class curl_http_client final : public http_client {
 public:
  curl_http_client();
  http_response post_form(const std::string& url, const form_fields& fields,
                          const http_options& options) override;
};

// application/x-www-form-urlencoded, as the token endpoint expects. The
// caller wipes the result when a field holds a secret.
std::string form_encode(const form_fields& fields);

// Wipes every value of a sent form (tokens, the client secret, a code).
void wipe_values(form_fields& fields) noexcept;

}  // namespace oauth_relay::auth
