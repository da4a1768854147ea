// Envelope sender to account: pattern order, wildcards, case, default.
#include "relay/smtp/sender_router.hpp"

#include <gtest/gtest.h>

namespace oauth_relay::relay {
namespace {

TEST(sender_pattern, table) {
  struct row {
    const char* pattern;
    const char* address;
    bool matches;
  };
  const row rows[] = {
      {"alice@example.com", "alice@example.com", true},
      {"alice@example.com", "ALICE@Example.COM", true},
      {"alice@example.com", "alice@example.co", false},
      {"alice@example.com", "xalice@example.com", false},
      {"*@billing.example.com", "a@billing.example.com", true},
      {"*@billing.example.com", "@billing.example.com", true},
      {"*@billing.example.com", "a@sub.billing.example.com", false},
      {"*@*.example.com", "a@sub.billing.example.com", true},
      {"*", "anything@anywhere", true},
      {"a*b*c@x", "aXXbYYc@x", true},
      {"a*b*c@x", "aXXcYYb@x", false},
      {"*@example.com", "a@example.com.evil.org", false},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(sender_pattern_matches(r.pattern, r.address), r.matches)
        << r.pattern << " vs " << r.address;
  }
}

TEST(sender_router, first_matching_account_then_default) {
  config::account_settings a{"a@example.com", {"*@example.com"}, false, std::nullopt, {}};
  config::account_settings b{
      "b@example.com", {"b@example.com", "*@b.example.com"}, false, std::nullopt, {}};
  config::account_settings d{"d@example.com", {"d@example.com"}, true, std::nullopt, {}};
  sender_router router({a, b, d});
  EXPECT_EQ(router.route("b@example.com"), "a@example.com");  // config order wins
  EXPECT_EQ(router.route("x@b.example.com"), "b@example.com");
  EXPECT_EQ(router.route("someone@elsewhere.org"), "d@example.com");
  EXPECT_EQ(router.route(""), "d@example.com");
}

TEST(sender_router, no_default_refuses_unknown_senders) {
  config::account_settings a{"a@example.com", {"a@example.com"}, false, std::nullopt, {}};
  sender_router router({a});
  EXPECT_EQ(router.route("a@example.com"), "a@example.com");
  EXPECT_EQ(router.route("b@example.com"), std::nullopt);
  EXPECT_EQ(router.route(""), std::nullopt);
}

TEST(sender_router, a_service_accounts_domain_pattern_sends_each_sender_as_itself) {
  config::account_settings listed{"ops@example.com", {"ops@example.com"}, false, std::nullopt, {}};
  config::account_settings pattern{"*@example.com", {"*@example.com"}, false, std::nullopt, {}};
  pattern.service_account = std::make_shared<config::service_account_key>();
  config::account_settings d{"d@example.org", {}, true, std::nullopt, {}};
  sender_router router({listed, pattern, d});
  EXPECT_EQ(router.route("alice@example.com"), "alice@example.com");
  EXPECT_EQ(router.route("Bob@Example.com"), "Bob@Example.com");  // as the sender wrote it
  EXPECT_EQ(router.route("ops@example.com"), "ops@example.com");  // listed first: its own account
  EXPECT_EQ(router.route("eve@example.org"), "d@example.org");
  EXPECT_EQ(router.route(""), "d@example.org");  // the null sender is no mailbox
  const auto* route = router.find("alice@example.com");
  ASSERT_NE(route, nullptr);
  EXPECT_TRUE(route->per_mailbox);
  EXPECT_EQ(route->account, "*@example.com");
  // A pattern of senders without a service account routes to the account itself.
  config::account_settings plain{"a@example.net", {"*@example.net"}, false, std::nullopt, {}};
  EXPECT_EQ(sender_router({plain}).route("x@example.net"), "a@example.net");
}

}  // namespace
}  // namespace oauth_relay::relay
