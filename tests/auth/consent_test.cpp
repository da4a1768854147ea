// PKCE (RFC 7636 Appendix B), state, the consent URL and the redirect parser.
#include "auth/consent.hpp"

#include <gtest/gtest.h>

#include <set>

namespace oauth_relay::auth {
namespace {

bool all_unreserved(std::string_view text) {
  for (unsigned char c : text) {
    if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')) return false;
  }
  return true;
}

TEST(consent, rfc7636_appendix_b_verifier_from_its_octets) {
  const unsigned char octets[] = {116, 24,  223, 180, 151, 153, 224, 37,  79,  250, 96,
                                  125, 216, 173, 187, 186, 22,  212, 37,  77,  105, 214,
                                  191, 240, 91,  88,  5,   88,  83,  132, 141, 121};
  const std::string bytes(reinterpret_cast<const char*>(octets), sizeof octets);
  EXPECT_EQ(base64url_encode(bytes), "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}

TEST(consent, rfc7636_appendix_b_s256_challenge) {
  EXPECT_EQ(s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

TEST(consent, base64url_has_no_padding_and_the_url_alphabet) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");  // "+/+/" in standard base64
}

TEST(consent, pkce_verifier_is_43_unreserved_characters_and_matches_its_challenge) {
  std::set<std::string> seen;
  for (int i = 0; i < 20; ++i) {
    const auto p = make_pkce();
    EXPECT_EQ(p.verifier.size(), 43u);
    EXPECT_TRUE(all_unreserved(p.verifier)) << p.verifier;
    EXPECT_EQ(p.challenge, s256_challenge(p.verifier));
    EXPECT_EQ(p.challenge.size(), 43u);
    seen.insert(p.verifier);
  }
  EXPECT_EQ(seen.size(), 20u);  // fresh randomness every time
}

TEST(consent, state_is_random_and_url_safe) {
  const auto a = make_state(), b = make_state();
  EXPECT_EQ(a.size(), 22u);
  EXPECT_TRUE(all_unreserved(a));
  EXPECT_NE(a, b);
}

TEST(consent, loopback_redirect_uses_the_ipv4_literal) {
  EXPECT_EQ(loopback_redirect_uri(8080), "http://127.0.0.1:8080/");
}

TEST(consent, consent_url_carries_every_parameter_encoded) {
  consent_request r;
  r.auth_url = "https://accounts.google.com/o/oauth2/v2/auth";
  r.client_id = "1234-abc.apps.googleusercontent.com";
  r.redirect_uri = "http://127.0.0.1:41234/";
  r.login_hint = "alice+relay@example.com";
  r.code_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
  r.state = "s-t_a.te~";
  EXPECT_EQ(consent_url(r),
            "https://accounts.google.com/o/oauth2/v2/auth"
            "?client_id=1234-abc.apps.googleusercontent.com"
            "&redirect_uri=http%3A%2F%2F127.0.0.1%3A41234%2F"
            "&response_type=code"
            "&scope=https%3A%2F%2Fmail.google.com%2F%20openid%20email"
            "&access_type=offline"
            "&prompt=consent"
            "&login_hint=alice%2Brelay%40example.com"
            "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
            "&code_challenge_method=S256"
            "&state=s-t_a.te~");
}

TEST(consent, consent_url_appends_to_an_auth_url_with_a_query) {
  consent_request r;
  r.auth_url = "https://idp.example/auth?hd=example.com";
  r.client_id = "c";
  const auto url = consent_url(r);
  EXPECT_EQ(url.rfind("https://idp.example/auth?hd=example.com&client_id=c&redirect_uri=", 0), 0u)
      << url;
}

TEST(consent, parses_a_pasted_redirect_url) {
  const auto p = parse_redirect(
      "  http://127.0.0.1:41234/?state=abc&iss=https%3A%2F%2Faccounts.google.com&code=4%2F0AX-y_"
      "z&scope=email%20https%3A%2F%2Fmail.google.com%2F+openid\n");
  ASSERT_TRUE(p);
  ASSERT_TRUE(p->code);
  EXPECT_EQ(*p->code, "4/0AX-y_z");
  EXPECT_EQ(*p->state, "abc");
  EXPECT_FALSE(p->error);
  EXPECT_EQ(p->scope, "email https://mail.google.com/ openid");
  EXPECT_TRUE(p->answered());
}

TEST(consent, parses_a_request_target_and_a_bare_query) {
  auto p = parse_redirect("/?code=c1&state=s1");
  ASSERT_TRUE(p && p->code && p->state);
  EXPECT_EQ(*p->code, "c1");
  EXPECT_EQ(*p->state, "s1");
  p = parse_redirect("code=c2&state=s2");
  ASSERT_TRUE(p && p->code);
  EXPECT_EQ(*p->code, "c2");
  p = parse_redirect("?code=c3");
  ASSERT_TRUE(p && p->code);
  EXPECT_EQ(*p->code, "c3");
  EXPECT_FALSE(p->state);
}

TEST(consent, parses_an_error_redirect) {
  const auto p = parse_redirect(
      "http://127.0.0.1:5/?error=access_denied&error_description=The+user+said+no&state=xyz");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->code);
  ASSERT_TRUE(p->error);
  EXPECT_EQ(*p->error, "access_denied");
  EXPECT_EQ(p->error_description, "The user said no");
  EXPECT_EQ(*p->state, "xyz");
  EXPECT_TRUE(p->answered());
}

TEST(consent, ignores_quotes_brackets_fragments_and_repeats) {
  const auto p = parse_redirect("\"<http://127.0.0.1:1/?code=first&code=second&state=s#frag>\"");
  ASSERT_TRUE(p && p->code && p->state);
  EXPECT_EQ(*p->code, "first");  // RFC 6749 §3.1: no repeats; the first counts
  EXPECT_EQ(*p->state, "s");
}

TEST(consent, something_without_an_answer_is_not_one) {
  EXPECT_FALSE(parse_redirect("http://127.0.0.1:1/"));
  EXPECT_FALSE(parse_redirect("hello there"));
  EXPECT_FALSE(parse_redirect(""));
  const auto p = parse_redirect("http://127.0.0.1:1/?foo=bar");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->answered());
}

TEST(consent, percent_decoding_keeps_malformed_escapes) {
  EXPECT_EQ(percent_decode("a%2Fb%2fc+d%zz%4"), "a/b/c d%zz%4");
  EXPECT_EQ(percent_encode("a b/~"), "a%20b%2F~");
}

TEST(consent, target_path_drops_query_and_fragment) {
  EXPECT_EQ(target_path("/?code=1"), "/");
  EXPECT_EQ(target_path("/favicon.ico"), "/favicon.ico");
  EXPECT_EQ(target_path("/x#y"), "/x");
}

TEST(consent, scope_granted_reads_the_space_separated_list) {
  EXPECT_TRUE(scope_granted("openid https://mail.google.com/ email", mail_scope));
  EXPECT_FALSE(
      scope_granted("openid email https://www.googleapis.com/auth/gmail.send", mail_scope));
  EXPECT_TRUE(scope_granted("", mail_scope));  // not said: what was asked
}

}  // namespace
}  // namespace oauth_relay::auth
