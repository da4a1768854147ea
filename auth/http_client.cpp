// libcurl behind the http_client seam. Each request gets its own easy handle,
// so calls from several workers never share state.
#include "auth/http_client.hpp"

#include <curl/curl.h>

#include <cstring>
#include <memory>
#include <mutex>

#include "auth/curl_setup.hpp"
#include "common/secret.hpp"

namespace oauth_relay::auth {
namespace {

// A token response is a few hundred bytes; anything far larger is not one.
constexpr std::size_t max_response_body = 1024 * 1024;
// Room for a token response with an id_token, so the body holding the
// tokens is not reallocated (and a copy left unwiped) while it arrives.
constexpr std::size_t expected_response_body = 16 * 1024;

struct easy_free {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct slist_free {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

std::size_t collect_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  const std::size_t n = size * count;
  if (body->size() + n > max_response_body) return 0;  // makes curl fail with a write error
  body->append(data, n);
  return n;
}

int check_cancel(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel != nullptr && cancel->load() ? 1 : 0;
}

// Appends `text` percent-encoded to `out`; curl's copy is wiped, as the
// text may be a secret.
void append_escaped(std::string& out, std::string_view text) {
  // Since 7.82 curl_easy_escape needs no handle.
  char* escaped = curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  if (escaped == nullptr) throw std::bad_alloc();
  const std::size_t n = std::strlen(escaped);
  out.append(escaped, n);
  ::explicit_bzero(escaped, n);
  curl_free(escaped);
}

// Every option each request needs; curl_setup_error when one is refused.
void set_options(CURL* c, const std::string& url, const std::string& body, char* error_buffer,
                 curl_slist* headers, const http_options& options, http_response& response) {
  OAUTH_RELAY_SETOPT(c, CURLOPT_URL, url.c_str());
  OAUTH_RELAY_SETOPT(c, CURLOPT_ERRORBUFFER, error_buffer);
  // Worker threads: signals for DNS timeouts would hit random threads.
  OAUTH_RELAY_SETOPT(c, CURLOPT_NOSIGNAL, 1L);
  // Credentials travel in the body: never over anything but verified HTTPS.
  OAUTH_RELAY_SETOPT(c, CURLOPT_PROTOCOLS_STR, "https");
  OAUTH_RELAY_SETOPT(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  OAUTH_RELAY_SETOPT(c, CURLOPT_FOLLOWLOCATION, 0L);
  OAUTH_RELAY_SETOPT(c, CURLOPT_SSL_VERIFYPEER, 1L);
  OAUTH_RELAY_SETOPT(c, CURLOPT_SSL_VERIFYHOST, 2L);
  OAUTH_RELAY_SETOPT(c, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
  if (options.ca_file) OAUTH_RELAY_SETOPT(c, CURLOPT_CAINFO, options.ca_file->c_str());
  OAUTH_RELAY_SETOPT(c, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(options.connect_timeout.count()));
  OAUTH_RELAY_SETOPT(c, CURLOPT_TIMEOUT_MS, static_cast<long>(options.total_timeout.count()));
  OAUTH_RELAY_SETOPT(c, CURLOPT_POST, 1L);
  OAUTH_RELAY_SETOPT(c, CURLOPT_POSTFIELDS, body.c_str());
  OAUTH_RELAY_SETOPT(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  OAUTH_RELAY_SETOPT(c, CURLOPT_HTTPHEADER, headers);
  OAUTH_RELAY_SETOPT(c, CURLOPT_USERAGENT, "oauth-relay");
  OAUTH_RELAY_SETOPT(c, CURLOPT_WRITEFUNCTION, collect_body);
  OAUTH_RELAY_SETOPT(c, CURLOPT_WRITEDATA, &response.body);
  OAUTH_RELAY_SETOPT(c, CURLOPT_NOPROGRESS, 0L);
  OAUTH_RELAY_SETOPT(c, CURLOPT_XFERINFOFUNCTION, check_cancel);
  OAUTH_RELAY_SETOPT(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(options.cancel));
}

}  // namespace

std::string form_encode(const form_fields& fields) {
  // Sized once: growing would leave earlier copies of the secrets behind.
  std::size_t size = 0;
  for (const auto& [name, value] : fields) size += 3 * (name.size() + value.size()) + 2;
  std::string out;
  out.reserve(size);
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    append_escaped(out, name);
    out += '=';
    append_escaped(out, value);
  }
  return out;
}

void wipe_values(form_fields& fields) noexcept {
  for (auto& field : fields) wipe(field.second);
}

curl_http_client::curl_http_client() {
  // curl_global_init is not safe to run concurrently with anything else in curl.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

http_response curl_http_client::post_form(const std::string& url, const form_fields& fields,
                                          const http_options& options) {
  http_response response;
  std::unique_ptr<CURL, easy_free> curl(curl_easy_init());
  if (!curl) {
    response.error = "cannot create a libcurl handle";
    return response;
  }
  CURL* c = curl.get();
  std::string body = form_encode(fields);
  wipe_on_exit wipe_body(body);  // curl reads it only inside curl_easy_perform
  response.body.reserve(expected_response_body);
  char error_buffer[CURL_ERROR_SIZE] = {};
  std::unique_ptr<curl_slist, slist_free> headers(
      curl_slist_append(nullptr, "Accept: application/json"));

  try {
    set_options(c, url, body, error_buffer, headers.get(), options, response);
  } catch (const curl_setup_error& e) {
    // Sent without an option it asked for, the request might not be what
    // it must be (https only, verified): not sent at all.
    response.error = e.what();
    return response;
  }

  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    response.body.clear();
    response.error = error_buffer[0] != '\0' ? error_buffer : curl_easy_strerror(rc);
    if (rc == CURLE_WRITE_ERROR) response.error = "response body too large";
    if (rc == CURLE_ABORTED_BY_CALLBACK) response.error = "cancelled";
    return response;
  }
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

}  // namespace oauth_relay::auth
