// The recipients of the relay's own reports: a local sender's report goes
// to its aliases, a real address stays, a local name nobody maps is left out.
#include "relay/spool/local_bounces.hpp"

#include <gtest/gtest.h>

namespace oauth_relay::relay {
namespace {

TEST(local_bounces, reports_to_local_senders_go_to_their_aliases) {
  auto built =
      local_addresses::build({"localhost", "relay.test"},
                             {{"root", {"admin@example.com", "backup@example.com"}, "c", 1},
                              {"cron", {"admin@example.com"}, "c", 2}},
                             100);
  ASSERT_TRUE(built.table);
  smtp::rcpt_parameters params;
  params.notify.specified = true;
  params.notify.never = true;
  const std::vector<recipient> in = {{"root@localhost", params},
                                     {"someone@example.org", {}},
                                     {"CRON@relay.test", {}},
                                     {"nobody@localhost", {}}};
  std::vector<std::string> unknown;
  const auto out = expand_local_recipients(*built.table, in, unknown);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].address, "admin@example.com");
  EXPECT_TRUE(out[0].params.notify.never);
  EXPECT_EQ(out[1].address, "backup@example.com");
  EXPECT_EQ(out[2].address, "someone@example.org");
  EXPECT_EQ(unknown, std::vector<std::string>{"nobody@localhost"});
}

}  // namespace
}  // namespace oauth_relay::relay
