// Table tests for the config's text checks (config/validators.hpp): what each
// accepts and refuses at its edges, and where the config is stricter than
// the SMTP server's grammar it is built on.
#include "config/validators.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "relay/smtp/parser.hpp"

namespace oauth_relay::config {
namespace {

// `text` repeated to `n` characters.
std::string repeat(std::string_view text, std::size_t n) {
  std::string out;
  while (out.size() < n) out += text;
  out.resize(n);
  return out;
}

// A domain of exactly `n` characters: 63-character labels, the last one shorter.
std::string domain_of_length(std::size_t n) {
  std::string out;
  while (out.size() + 64 < n) out += repeat("a", 63) + ".";
  return out + repeat("b", n - out.size());
}

struct bool_case {
  std::string text;
  bool expected;
};

// ---------------------------------------------------------------------------
// Domain names

TEST(is_domain_name, table) {
  const std::vector<bool_case> cases = {
      {"example.com", true},
      {"relay", true},
      {"a-b.example", true},
      {"xn--bcher-kva.example", true},
      {"EXAMPLE.COM", true},
      {"123.example", true},  // numeric labels are fine before the last
      {"example.c0m", true},
      {repeat("a", 63) + ".com", true},
      {repeat("a", 64) + ".com", false},  // RFC 1035: 63 per label
      {"", false},
      {".", false},
      {"example.com.", false},  // the final dot is not taken
      {".example.com", false},
      {"a..b", false},
      {"-a.com", false},
      {"a-.com", false},
      {"a_b.com", false},
      {"a b.com", false},
      {"[127.0.0.1]", false},
      {"10.0.0.1", false},  // an IPv4 literal is not a name
      {"example.123", false},
      {"bücher.example", false},  // U-labels: the config wants the A-label
      {std::string("a\0b.com", 7), false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(is_domain_name(c.text), c.expected);
  }
}

TEST(is_domain_name, stricter_than_the_server_at_253_characters) {
  EXPECT_TRUE(is_domain_name(domain_of_length(253)));
  for (const std::size_t n : {254u, 255u}) {
    SCOPED_TRACE(n);
    EXPECT_TRUE(smtp::is_valid_domain(domain_of_length(n), false));
    EXPECT_FALSE(is_domain_name(domain_of_length(n)));
  }
  EXPECT_TRUE(smtp::is_valid_domain("example.123", false));
}

TEST(parse_host, table) {
  struct host_case {
    std::string text;
    std::optional<std::string> expected;
  };
  const std::vector<host_case> cases = {
      {"smtp.gmail.com", "smtp.gmail.com"},
      {"127.0.0.1", "127.0.0.1"},
      {"::1", "::1"},
      {"[::1]", "::1"},  // as in a URL
      {"[2001:db8::1]", "2001:db8::1"},
      {"[127.0.0.1]", std::nullopt},  // brackets are for IPv6
      {"[smtp.gmail.com]", std::nullopt},
      {"[]", std::nullopt},
      {"[::1", std::nullopt},
      {"", std::nullopt},
      {"smtp.gmail.com:587", std::nullopt},
      {"10.0.0.256", std::nullopt},
      {"fe80::1%eth0", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_host(c.text), c.expected);
  }
}

// ---------------------------------------------------------------------------
// Mail addresses

TEST(is_email_address, table) {
  const std::vector<bool_case> cases = {
      {"alice@example.com", true},
      {"Alice.Smith@Example.COM", true},
      {"a+tag@example.com", true},
      {"!#$%&'*+-/=?^_`{|}~@example.com", true},
      {"a.b.c@sub.example.com", true},
      {"root@localhost", true},
      {repeat("a", 64) + "@example.com", true},
      {repeat("a", 65) + "@example.com", false},  // RFC 5321 §4.5.3.1.1
      {"", false},
      {"alice", false},
      {"@example.com", false},
      {"alice@", false},
      {".alice@example.com", false},
      {"alice.@example.com", false},
      {"al..ice@example.com", false},
      {"al ice@example.com", false},
      {"al,ice@example.com", false},
      {"alice@example..com", false},
      {"alice@-example.com", false},
      {"a@b@example.com", false},
      {"<alice@example.com>", false},
      {"alice@example.com ", false},
      {"jöhn@example.com", false},  // no SMTPUTF8 local parts
      {std::string("al\0ice@example.com", 18), false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(is_email_address(c.text), c.expected);
  }
}

// The server takes these as mailboxes; no Google account is one, so the
// config refuses them on top of the server's grammar.
TEST(is_email_address, stricter_than_the_server) {
  const std::vector<std::string> cases = {
      "\"john doe\"@example.com",  // quoted local part
      "\"a\"@example.com",
      "alice@[127.0.0.1]",  // address literals
      "alice@[IPv6:::1]",
      "alice@example.123",           // numeric top-level label
      "a@" + domain_of_length(252),  // 254 in all, but a 252-character domain is fine...
  };
  for (std::size_t i = 0; i + 1 < cases.size(); ++i) {
    SCOPED_TRACE(cases[i]);
    EXPECT_TRUE(smtp::is_valid_mailbox(cases[i], false));
    EXPECT_FALSE(is_email_address(cases[i]));
  }
  // ... and both agree on the 254-octet limit of a whole address.
  EXPECT_TRUE(is_email_address(cases.back()));
  EXPECT_FALSE(is_email_address("ab@" + domain_of_length(252)));
  EXPECT_FALSE(smtp::is_valid_mailbox("ab@" + domain_of_length(252), false));
}

TEST(is_sender_pattern, table) {
  const std::vector<bool_case> cases = {
      {"alice@example.com", true},
      {"*@example.com", true},
      {"*@*.example.com", true},
      {"alice+*@example.com", true},
      {"*@*", true},
      {"*", false},  // one '@' is needed
      {"*@a@b", false},
      {"* @example.com", false},
      {"*@exa\tmple.com", false},
      {"<*@example.com>", false},
      {"\"*\"@example.com", false},
      {"*@example.com\x7f", false},
      {"alice@example", true},
      {"alice@", false},  // without '*' it must be an address
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(is_sender_pattern(c.text), c.expected);
  }
}

// ---------------------------------------------------------------------------
// Addresses to listen on and networks to allow

TEST(parse_listen, table) {
  struct listen_case {
    std::string text;
    std::optional<listen_address> expected;
  };
  const std::vector<listen_case> cases = {
      {"127.0.0.1:25", listen_address{"127.0.0.1", 25}},
      {"0.0.0.0:2525", listen_address{"0.0.0.0", 2525}},
      {"[::1]:25", listen_address{"::1", 25}},
      {"[::]:25", listen_address{"::", 25}},
      {"[0:0::1]:587", listen_address{"::1", 587}},  // inet_ntop's canonical form
      {"[::ffff:127.0.0.1]:25", listen_address{"::ffff:127.0.0.1", 25}},
      {"127.0.0.1:0", listen_address{"127.0.0.1", 0}},  // any free port
      {"127.0.0.1:65535", listen_address{"127.0.0.1", 65535}},
      {"127.0.0.1:65536", std::nullopt},
      {"127.0.0.1:00", std::nullopt},
      {"127.0.0.1:", std::nullopt},
      {"127.0.0.1", std::nullopt},
      {"127.0.0.1:-1", std::nullopt},
      {"127.0.0.1:2 5", std::nullopt},
      {"localhost:25", std::nullopt},    // no names: the daemon binds what it is given
      {"::1:25", std::nullopt},          // IPv6 needs brackets
      {"[127.0.0.1]:25", std::nullopt},  // brackets are for IPv6
      {"[::1]25", std::nullopt},
      {"[::1:25", std::nullopt},
      {"[fe80::1%lo]:25", std::nullopt},
      {"", std::nullopt},
      {":25", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_listen(c.text), c.expected);
  }
}

TEST(parse_network, table) {
  struct network_case {
    std::string text;
    std::optional<std::vector<std::uint8_t>> address;
    unsigned prefix_length = 0;
  };
  using bytes = std::vector<std::uint8_t>;
  const bytes loopback6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const std::vector<network_case> cases = {
      {"127.0.0.0/8", bytes{127, 0, 0, 0}, 8},
      {"10.1.2.3/8", bytes{10, 0, 0, 0}, 8},  // host bits cleared
      {"192.168.1.7", bytes{192, 168, 1, 7}, 32},
      {"0.0.0.0/0", bytes{0, 0, 0, 0}, 0},
      {"::1/128", loopback6, 128},
      {"::1", loopback6, 128},
      {"::ffff:10.0.0.0/104", bytes{10, 0, 0, 0}, 8},  // IPv4-mapped: stored as IPv4
      {"10.0.0.0/33", std::nullopt},
      {"::/129", std::nullopt},
      {"10.0.0.0/", std::nullopt},
      {"10.0.0.0/8/8", std::nullopt},
      {"10.0.0.0/-1", std::nullopt},
      {"10.0.0.0/ 8", std::nullopt},
      {"10.0.0/8", std::nullopt},
      {"localhost/8", std::nullopt},
      {"/8", std::nullopt},
      {"", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    const auto got = parse_network(c.text);
    ASSERT_EQ(got.has_value(), c.address.has_value());
    if (!got) continue;
    EXPECT_EQ(got->address, *c.address);
    EXPECT_EQ(got->prefix_length, c.prefix_length);
  }
}

// ---------------------------------------------------------------------------
// Numbers and URLs

TEST(parse_positive, table) {
  struct number_case {
    std::string text;
    std::optional<std::size_t> expected;
  };
  const std::vector<number_case> cases = {
      {"1", 1},
      {"100", 100},
      {"007", 7},
      {"18446744073709551615", 18446744073709551615ULL},
      {"18446744073709551616", std::nullopt},
      {"0", std::nullopt},
      {"", std::nullopt},
      {"-1", std::nullopt},
      {"+1", std::nullopt},
      {"1.0", std::nullopt},
      {"1e3", std::nullopt},
      {" 1", std::nullopt},
      {"1 ", std::nullopt},
      {"0x10", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_positive(c.text), c.expected);
  }
}

TEST(parse_port, table) {
  struct port_case {
    std::string text;
    std::optional<std::uint16_t> expected;
  };
  const std::vector<port_case> cases = {
      {"1", 1},
      {"25", 25},
      {"587", 587},
      {"65535", 65535},
      {"0", std::nullopt},  // the upstream has a real port
      {"65536", std::nullopt},
      {"99999999999", std::nullopt},
      {"", std::nullopt},
      {"smtp", std::nullopt},
      {"-25", std::nullopt},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_port(c.text), c.expected);
  }
}

TEST(is_https_url, table) {
  const std::vector<bool_case> cases = {
      {"https://oauth2.googleapis.com/token", true},
      {"https://127.0.0.1:8443/token?x=1", true},
      {"https://x", true},
      {"https://", false},
      {"http://oauth2.googleapis.com/token", false},
      {"HTTPS://oauth2.googleapis.com/token", false},
      {"oauth2.googleapis.com/token", false},
      {"https://oauth2.googleapis.com/to ken", false},
      {"https://oauth2.googleapis.com/token\n", false},
      {"https://oauth2.googleapis.com/\x7f", false},
      {"", false},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(is_https_url(c.text), c.expected);
  }
}

}  // namespace
}  // namespace oauth_relay::config
