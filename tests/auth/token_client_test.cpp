// The token client against the fake endpoint over real TLS: each answer
// Google can give is classified, and no error text carries a secret.
#include "auth/token_client.hpp"

#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "oauth_test_support.hpp"

namespace oauth_relay::auth {
namespace {

using std::chrono::milliseconds;
using testing::HasSubstr;
using testing::Not;
using testing::StartsWith;

class token_client_test : public testing::Test {
 protected:
  token_client client(config::oauth_settings oauth,
                      milliseconds total_timeout = std::chrono::seconds(10)) {
    return token_client(http_, std::move(oauth), std::chrono::seconds(5), total_timeout);
  }
  token_client client() { return client(env_.settings().oauth); }

  // No error text may carry the secrets involved.
  void expect_no_secrets(const token_response& r, std::initializer_list<std::string> secrets) {
    for (const auto& s : secrets) {
      EXPECT_THAT(r.error, Not(HasSubstr(s)));
      EXPECT_THAT(r.oauth_error, Not(HasSubstr(s)));
    }
    EXPECT_THAT(r.error, Not(HasSubstr(env_.fake.client_secret())));
  }

  testing_support::oauth_env env_;
  std::shared_ptr<http_client> http_ = std::make_shared<curl_http_client>();
};

TEST_F(token_client_test, refresh_returns_a_working_access_token) {
  env_.fake.add_account("alice@example.com", "1//alice");
  auto r = client().refresh("1//alice");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.failure, token_failure::none);
  EXPECT_EQ(r.http_status, 200);
  EXPECT_THAT(r.access_token, StartsWith("ya29.fake-"));
  EXPECT_EQ(r.expires_in, std::chrono::seconds(3599));
  EXPECT_EQ(r.scope, "https://mail.google.com/");
  EXPECT_EQ(r.refresh_token, "");
  EXPECT_TRUE(env_.fake.token_valid("alice@example.com", r.access_token));
  EXPECT_FALSE(env_.fake.token_valid("bob@example.com", r.access_token));

  const auto sent = env_.fake.last_token_request();
  EXPECT_EQ(sent.at("grant_type"), "refresh_token");
  EXPECT_EQ(sent.at("client_id"), env_.fake.client_id());
  EXPECT_EQ(sent.at("client_secret"), env_.fake.client_secret());
  EXPECT_EQ(sent.at("refresh_token"), "1//alice");
  EXPECT_EQ(env_.fake.refreshes_served(), 1u);
}

TEST_F(token_client_test, form_values_are_escaped) {
  // '+', '&' and '=' would corrupt an unescaped form.
  env_.fake.add_account("alice@example.com", "1//a+b&c=d e");
  auto r = client().refresh("1//a+b&c=d e");
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(env_.fake.last_token_request().at("refresh_token"), "1//a+b&c=d e");
}

TEST_F(token_client_test, rotated_refresh_token_is_returned) {
  env_.fake.add_account("alice@example.com", "1//alice");
  env_.fake.rotate_refresh_tokens(true);
  auto r = client().refresh("1//alice");
  ASSERT_TRUE(r.ok()) << r.error;
  ASSERT_NE(r.refresh_token, "");
  EXPECT_NE(r.refresh_token, "1//alice");
  EXPECT_EQ(env_.fake.refresh_token_of("alice@example.com"), r.refresh_token);
  EXPECT_EQ(client().refresh("1//alice").failure, token_failure::invalid_grant);
  EXPECT_TRUE(client().refresh(r.refresh_token).ok());
}

TEST_F(token_client_test, revoked_or_unknown_refresh_token_is_invalid_grant) {
  env_.fake.add_account("alice@example.com", "1//alice-secret-rt");
  env_.fake.revoke("1//alice-secret-rt");
  for (const std::string& token :
       {std::string("1//alice-secret-rt"), std::string("1//never-issued")}) {
    auto r = client().refresh(token);
    EXPECT_EQ(r.failure, token_failure::invalid_grant);
    EXPECT_EQ(r.http_status, 400);
    EXPECT_EQ(r.oauth_error, "invalid_grant");
    EXPECT_EQ(r.error,
              "token endpoint refused the refresh token: invalid_grant (Token has been expired "
              "or revoked.), HTTP 400");
    EXPECT_EQ(r.access_token, "");
    expect_no_secrets(r, {token});
  }
}

TEST_F(token_client_test, wrong_client_secret_is_invalid_client_and_says_so) {
  env_.fake.add_account("alice@example.com", "1//alice");
  auto oauth = env_.settings().oauth;
  oauth.client_secret = "GOCSPX-wrong-secret";
  auto r = client(oauth).refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::invalid_client);
  EXPECT_EQ(r.http_status, 401);
  EXPECT_THAT(r.error, HasSubstr("wrong oauth.client_id or client secret"));
  EXPECT_THAT(r.error, HasSubstr("invalid_client"));
  expect_no_secrets(r, {"GOCSPX-wrong-secret", "1//alice"});
}

TEST_F(token_client_test, wrong_client_id_is_invalid_client) {
  env_.fake.add_account("alice@example.com", "1//alice");
  auto oauth = env_.settings().oauth;
  oauth.client_id = "someone-else.apps.googleusercontent.com";
  auto r = client(oauth).refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::invalid_client);
  EXPECT_THAT(r.error, HasSubstr("The OAuth client was not found."));
}

TEST_F(token_client_test, service_unavailable_is_temporary) {
  env_.fake.add_account("alice@example.com", "1//alice");
  env_.fake.fail_with_503(true);
  auto r = client().refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.error, "token endpoint answered HTTP 503");
  expect_no_secrets(r, {"1//alice"});
}

TEST_F(token_client_test, malformed_body_is_temporary) {
  env_.fake.add_account("alice@example.com", "1//alice");
  env_.fake.respond_malformed(true);
  auto r = client().refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_EQ(r.http_status, 200);
  EXPECT_THAT(r.error, HasSubstr("malformed"));
  EXPECT_EQ(r.access_token, "");
}

TEST_F(token_client_test, slow_endpoint_times_out_as_temporary) {
  env_.fake.add_account("alice@example.com", "1//alice");
  env_.fake.set_delay(milliseconds(2000));
  const auto start = std::chrono::steady_clock::now();
  auto r = client(env_.settings().oauth, milliseconds(300)).refresh("1//alice");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.error, HasSubstr("token endpoint unreachable: "));
  EXPECT_THAT(r.error, HasSubstr("timed out"));
  EXPECT_LT(elapsed, milliseconds(1900));  // the client gave up, not the server
  expect_no_secrets(r, {"1//alice"});
}

TEST_F(token_client_test, certificate_from_an_unknown_ca_is_refused_before_sending) {
  env_.fake.add_account("alice@example.com", "1//alice");
  fakes::test_pki stranger;
  auto oauth = env_.settings().oauth;
  oauth.ca_file = stranger.write_ca(env_.dir.path() / "stranger.pem");
  auto r = client(oauth).refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_THAT(r.error, HasSubstr("certificate"));
  EXPECT_EQ(env_.fake.token_requests(), 0u);

  // Nor does the system store know the test CA.
  oauth.ca_file.reset();
  r = client(oauth).refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_EQ(env_.fake.token_requests(), 0u);
}

TEST_F(token_client_test, plain_http_is_never_used) {
  env_.fake.add_account("alice@example.com", "1//alice");
  auto oauth = env_.settings().oauth;
  oauth.token_url = "http://127.0.0.1:" + std::to_string(env_.fake.port()) + "/token";
  auto r = client(oauth).refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::temporary);
  EXPECT_THAT(r.error, HasSubstr("http"));
  EXPECT_EQ(env_.fake.token_requests(), 0u);
}

TEST_F(token_client_test, wrong_url_path_is_rejected_with_a_hint) {
  auto oauth = env_.settings().oauth;
  oauth.token_url = "https://127.0.0.1:" + std::to_string(env_.fake.port()) + "/oauth/token";
  auto r = client(oauth).refresh("1//alice");
  EXPECT_EQ(r.failure, token_failure::rejected);
  EXPECT_EQ(r.http_status, 404);
  EXPECT_THAT(r.error, HasSubstr("check oauth.token_url"));
}

// ---------------------------------------------------------------- authorization code

std::string base64url(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(bytes.data()),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::string s256(const std::string& verifier) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(verifier.data(), verifier.size(), digest, &n, EVP_sha256(), nullptr);
  return base64url(std::string_view(reinterpret_cast<const char*>(digest), n));
}

std::string escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  std::string out(e);
  curl_free(e);
  return out;
}

// Plays the browser: opens the consent URL, returns where it redirects.
std::string consent_redirect(const std::string& url, const std::filesystem::path& ca) {
  CURL* c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CAINFO, ca.c_str());
  curl_easy_setopt(
      c, CURLOPT_WRITEFUNCTION,
      +[](char*, std::size_t size, std::size_t n, void*) { return size * n; });
  std::string location;
  if (curl_easy_perform(c) == CURLE_OK) {
    char* redirect = nullptr;
    curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &redirect);
    if (redirect) location = redirect;
  }
  curl_easy_cleanup(c);
  return location;
}

std::string query_value(const std::string& url, const std::string& name) {
  const auto pos = url.find(name + "=");
  if (pos == std::string::npos) return {};
  const auto end = url.find('&', pos);
  std::string value =
      url.substr(pos + name.size() + 1,
                 end == std::string::npos ? std::string::npos : end - pos - name.size() - 1);
  int n = 0;
  char* raw = curl_easy_unescape(nullptr, value.data(), static_cast<int>(value.size()), &n);
  std::string out(raw, static_cast<std::size_t>(n));
  curl_free(raw);
  return out;
}

class code_exchange_test : public token_client_test {
 protected:
  const std::string verifier_ = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk-verifier-long";
  const std::string redirect_ = "http://127.0.0.1:45678/";

  std::string consent_url(const std::string& challenge) {
    return env_.fake.auth_url() + "?client_id=" + escape(env_.fake.client_id()) +
           "&redirect_uri=" + escape(redirect_) +
           "&response_type=code&scope=" + escape("https://mail.google.com/ openid email") +
           "&code_challenge=" + challenge +
           "&code_challenge_method=S256&state=xyz-state&access_type=offline&prompt=consent" +
           "&login_hint=" + escape("alice@example.com");
  }
  std::string get_code() {
    env_.fake.set_consenting_account("alice@example.com");
    const auto location = consent_redirect(consent_url(s256(verifier_)), env_.ca_file);
    EXPECT_EQ(query_value(location, "state"), "xyz-state") << location;
    return query_value(location, "code");
  }
};

TEST_F(code_exchange_test, code_with_the_right_verifier_yields_tokens_and_the_email) {
  const auto code = get_code();
  ASSERT_NE(code, "");
  auto r = client().exchange_code(code, verifier_, redirect_);
  ASSERT_TRUE(r.ok()) << r.error;
  EXPECT_EQ(r.email, "alice@example.com");
  EXPECT_NE(r.refresh_token, "");
  EXPECT_EQ(env_.fake.refresh_token_of("alice@example.com"), r.refresh_token);
  EXPECT_TRUE(env_.fake.token_valid("alice@example.com", r.access_token));
  const auto sent = env_.fake.last_token_request();
  EXPECT_EQ(sent.at("grant_type"), "authorization_code");
  EXPECT_EQ(sent.at("redirect_uri"), redirect_);
  EXPECT_EQ(sent.at("code_verifier"), verifier_);
  // The refresh token it returned works.
  EXPECT_TRUE(client().refresh(r.refresh_token).ok());
}

TEST_F(code_exchange_test, wrong_verifier_is_refused_and_the_code_is_single_use) {
  const auto code = get_code();
  auto r = client().exchange_code(code, "another-verifier-of-sufficient-length-000000", redirect_);
  EXPECT_EQ(r.failure, token_failure::invalid_grant);
  EXPECT_THAT(r.error, HasSubstr("authorization code"));
  EXPECT_THAT(r.error, HasSubstr("Invalid code verifier."));
  expect_no_secrets(r, {code, "another-verifier-of-sufficient-length-000000"});
  EXPECT_EQ(client().exchange_code(code, verifier_, redirect_).failure,
            token_failure::invalid_grant);
  EXPECT_EQ(env_.fake.codes_exchanged(), 0u);
}

TEST_F(code_exchange_test, redirect_uri_must_match) {
  const auto code = get_code();
  auto r = client().exchange_code(code, verifier_, "http://127.0.0.1:1/");
  EXPECT_EQ(r.failure, token_failure::rejected);
  EXPECT_EQ(r.oauth_error, "redirect_uri_mismatch");
}

TEST_F(code_exchange_test, consent_screen_checks_the_request) {
  env_.fake.set_consenting_account("alice@example.com");
  const auto good = s256(verifier_);
  EXPECT_EQ(consent_redirect(consent_url(good) + "&x=1", env_.ca_file).rfind(redirect_, 0), 0u);
  EXPECT_EQ(env_.fake.last_auth_request().at("login_hint"), "alice@example.com");

  auto url = consent_url(good);
  const auto plain = url.replace(url.find("S256"), 4, "plain");
  EXPECT_EQ(consent_redirect(plain, env_.ca_file), "");
  EXPECT_EQ(env_.fake.last_auth_error(), "invalid_request");

  url = consent_url(good);
  const auto no_email = url.replace(url.find("%20email"), 8, "");
  EXPECT_EQ(consent_redirect(no_email, env_.ca_file), "");
  EXPECT_EQ(env_.fake.last_auth_error(), "invalid_scope");

  url = consent_url(good);
  const auto remote = url.replace(url.rfind("127.0.0.1"), 9, "example.org");
  EXPECT_EQ(consent_redirect(remote, env_.ca_file), "");
  EXPECT_EQ(env_.fake.last_auth_error(), "redirect_uri_mismatch");

  env_.fake.deny_consent(true);
  const auto denied = consent_redirect(consent_url(good), env_.ca_file);
  EXPECT_EQ(query_value(denied, "error"), "access_denied");
  EXPECT_EQ(query_value(denied, "state"), "xyz-state");
  EXPECT_EQ(query_value(denied, "code"), "");
}

TEST(id_token_email, reads_the_payload_claim) {
  const std::string token = base64url(R"({"alg":"RS256"})") + "." +
                            base64url(R"({"email":"alice@example.com","sub":"1"})") + ".c2ln";
  EXPECT_EQ(id_token_email(token), "alice@example.com");
  EXPECT_FALSE(id_token_email("not-a-jwt"));
  EXPECT_FALSE(id_token_email("a.!!!.c"));
  EXPECT_FALSE(id_token_email(base64url("{}") + "." + base64url(R"({"sub":"1"})") + ".x"));
}

// JWTs are base64url without padding (RFC 7515 §2); the standard alphabet is
// not one, so a payload written with it names no one.
TEST(id_token_email, reads_base64url_only) {
  const std::string payload = base64url(R"({"email":"alice@example.com","n":"~~~"})");
  ASSERT_NE(payload.find('-'), std::string::npos);
  std::string standard = payload;
  for (char& c : standard) c = c == '-' ? '+' : c == '_' ? '/' : c;
  EXPECT_EQ(id_token_email("e30." + payload + ".c2ln"), "alice@example.com");
  EXPECT_FALSE(id_token_email("e30." + standard + ".c2ln"));
}

TEST(read_id_token, reads_email_verification_and_audiences) {
  auto jwt = [](const std::string& payload) {
    return base64url(R"({"alg":"RS256"})") + "." + base64url(payload) + ".c2ln";
  };
  auto c = read_id_token(jwt(R"({"email":"a@x.org","email_verified":true,"aud":"cid"})"));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->email, "a@x.org");
  EXPECT_TRUE(c->email_verified);
  EXPECT_EQ(c->audiences, std::vector<std::string>{"cid"});
  c = read_id_token(jwt(R"({"email_verified":"true","aud":["other","cid",7]})"));
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->email_verified);
  EXPECT_EQ(c->audiences, (std::vector<std::string>{"other", "cid"}));
  for (const char* unverified : {R"({"email_verified":false})", R"({"email_verified":"yes"})",
                                 R"({"email_verified":1})", R"({})"}) {
    c = read_id_token(jwt(unverified));
    ASSERT_TRUE(c) << unverified;
    EXPECT_FALSE(c->email_verified) << unverified;
    EXPECT_TRUE(c->audiences.empty()) << unverified;
  }
  EXPECT_FALSE(read_id_token(jwt("[1]")));
  EXPECT_FALSE(read_id_token("not-a-jwt"));
}

// The token endpoint's answer as given, without a network.
class canned_http final : public http_client {
 public:
  explicit canned_http(std::string body) : body_(std::move(body)) {}
  http_response post_form(const std::string&, const form_fields&, const http_options&) override {
    return {200, body_, ""};
  }

 private:
  std::string body_;
};

struct identity_case {
  const char* name;
  std::string claims;
  std::string error;  // empty: accepted
};

class exchange_identity : public testing::TestWithParam<identity_case> {};

TEST_P(exchange_identity, the_id_token_must_be_ours_and_verified) {
  const auto& c = GetParam();
  nlohmann::json body = {
      {"access_token", "ya29.x"},
      {"refresh_token", "1//r"},
      {"expires_in", 3599},
      {"id_token", base64url(R"({"alg":"RS256"})") + "." + base64url(c.claims) + ".c2ln"}};
  config::oauth_settings oauth;
  oauth.client_id = "our-client.apps.googleusercontent.com";
  oauth.token_url = "https://oauth2.googleapis.com/token";
  const token_client client(std::make_shared<canned_http>(body.dump()), oauth);
  const auto r = client.exchange_code("code", "verifier", "http://127.0.0.1:1/");
  if (c.error.empty()) {
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.email, "alice@example.com");
  } else {
    EXPECT_EQ(r.failure, token_failure::rejected);
    EXPECT_EQ(r.error, c.error);
    EXPECT_EQ(r.email, "");
    EXPECT_EQ(r.refresh_token, "");  // nothing to store
  }
}

INSTANTIATE_TEST_SUITE_P(
    cases, exchange_identity,
    testing::Values(
        identity_case{"ours_and_verified",
                      R"({"aud":"our-client.apps.googleusercontent.com",)"
                      R"("email":"alice@example.com","email_verified":true})",
                      ""},
        identity_case{"ours_among_several",
                      R"({"aud":["x","our-client.apps.googleusercontent.com"],)"
                      R"("email":"alice@example.com","email_verified":true})",
                      ""},
        identity_case{"another_client",
                      R"({"aud":"evil.apps.googleusercontent.com",)"
                      R"("email":"alice@example.com","email_verified":true})",
                      "token endpoint returned an id_token that does not name the account: the "
                      "id_token was issued to another OAuth client (its aud is not "
                      "our-client.apps.googleusercontent.com)"},
        identity_case{"no_audience", R"({"email":"alice@example.com","email_verified":true})",
                      "token endpoint returned an id_token that does not name the account: the "
                      "id_token was issued to another OAuth client (its aud is not "
                      "our-client.apps.googleusercontent.com)"},
        identity_case{"unverified",
                      R"({"aud":"our-client.apps.googleusercontent.com",)"
                      R"("email":"alice@example.com","email_verified":false})",
                      "token endpoint returned an id_token that does not name the account: Google "
                      "has not verified the address alice@example.com of the account that "
                      "consented (email_verified is not true)"},
        identity_case{"no_email", R"({"aud":"our-client.apps.googleusercontent.com"})",
                      "token endpoint returned no id_token with an email claim (the scope must "
                      "include \"openid email\")"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(redact, replaces_every_occurrence_of_each_secret) {
  EXPECT_EQ(redact("a s3cret b s3cret tok", {"s3cret", "tok", ""}),
            "a ******** b ******** ********");
  EXPECT_EQ(redact("nothing here", {"s3cret"}), "nothing here");
}

}  // namespace
}  // namespace oauth_relay::auth
