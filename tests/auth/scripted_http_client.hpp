// A token endpoint in memory for the token manager's unit tests: each POST is
// answered by the next step of a script (then by a fallback) and recorded.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "auth/http_client.hpp"

namespace oauth_relay::auth::testing_support {

// Not thread-safe: the tests run the manager, this included, on one thread.
class scripted_http_client final : public http_client {
 public:
  struct request {
    std::string url;
    std::map<std::string, std::string> fields;
    std::thread::id thread;  // who called: the test's own thread, if nothing else runs
  };
  using step = std::function<http_response(const request&, const http_options&)>;

  scripted_http_client() = default;
  scripted_http_client(const scripted_http_client&) = delete;
  scripted_http_client& operator=(const scripted_http_client&) = delete;

  // The next unanswered request gets this.
  void then_answer(http_response response) {
    script_.push_back([response](const request&, const http_options&) { return response; });
  }
  void then_run(step s) { script_.push_back(std::move(s)); }
  // What every request beyond the script gets (default: granted()).
  void otherwise(step s) { fallback_ = std::move(s); }
  void otherwise_answer(http_response response) {
    fallback_ = [response](const request&, const http_options&) { return response; };
  }

  http_response post_form(const std::string& url, const form_fields& fields,
                          const http_options& options) override {
    request r{url, {fields.begin(), fields.end()}, std::this_thread::get_id()};
    requests_.push_back(r);
    if (script_.empty()) return fallback_(r, options);
    auto next = std::move(script_.front());
    script_.pop_front();
    return next(r, options);
  }

  const std::vector<request>& requests() const { return requests_; }

  // Google's answers.
  static http_response granted(const std::string& access_token, long expires_in = 3599,
                               const std::string& refresh_token = "") {
    std::string body = "{\"access_token\":\"" + access_token +
                       "\",\"expires_in\":" + std::to_string(expires_in) +
                       ",\"token_type\":\"Bearer\",\"scope\":\"https://mail.google.com/\"";
    if (!refresh_token.empty()) body += ",\"refresh_token\":\"" + refresh_token + "\"";
    return {200, body + "}", ""};
  }
  static http_response refused(long status, const std::string& error,
                               const std::string& description) {
    return {status, "{\"error\":\"" + error + "\",\"error_description\":\"" + description + "\"}",
            ""};
  }
  static http_response unavailable() { return {503, "<html>Service Unavailable</html>", ""}; }

 private:
  std::deque<step> script_;
  std::vector<request> requests_;
  int granted_ = 0;
  step fallback_ = [this](const request&, const http_options&) {
    return granted("ya29.stand-in-" + std::to_string(++granted_));
  };
};

}  // namespace oauth_relay::auth::testing_support
