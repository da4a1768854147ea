// The dialogue with local addresses: bare names qualified, local recipients
// replaced by their aliases at RCPT (ORCPT keeping the address given, each
// real address once, the recipient limit counting the addresses), and a
// local name nobody maps refused with 550 5.1.1.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "relay/smtp/protocol.hpp"

namespace oauth_relay::relay {
namespace {

struct step {
  std::string line;
  int code;
  std::string enhanced;
};

struct dialogue {
  std::string name;
  std::vector<step> steps;
  std::vector<std::string> recipients;  // the envelope after the last step
  std::string sender = "root@localhost";
};

std::vector<config::account_settings> accounts() {
  config::account_settings ops;
  ops.address = "ops@example.com";
  ops.is_default = true;
  return {ops};
}

std::shared_ptr<const local_addresses> table() {
  auto built = local_addresses::build(
      {"localhost", "relay.test"},
      {{"root", {"admin@example.com"}, "c", 1},
       {"postmaster", {"root", "Admin@example.com", "pm@example.com"}, "c", 2},
       {"team", {"a@example.com", "b@example.com", "c@example.com"}, "c", 3}},
      3);
  EXPECT_TRUE(built.table);
  return built.table;
}

const std::vector<dialogue> dialogues = {
    {"bare_names_qualified_and_expanded",
     {{"EHLO c", 250, ""}, {"MAIL FROM:<root>", 250, "2.1.0"}, {"RCPT TO:<root>", 250, "2.1.5"}},
     {"admin@example.com"}},
    {"bare_names_without_brackets",
     {{"HELO c", 250, ""}, {"MAIL FROM:root", 250, "2.1.0"}, {"RCPT TO:root", 250, "2.1.5"}},
     {"admin@example.com"}},
    {"local_domain_expanded_without_case",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<cron@relay.test>", 250, "2.1.0"},
      {"RCPT TO:<ROOT@Relay.Test>", 250, "2.1.5"}},
     {"admin@example.com"},
     "cron@relay.test"},
    {"unmapped_local_name_refused",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<root>", 250, "2.1.0"},
      {"RCPT TO:<www-data>", 550, "5.1.1"},
      {"RCPT TO:<nobody@relay.test>", 550, "5.1.1"},
      {"DATA", 554, "5.5.1"}},
     {}},
    {"real_addresses_pass",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<root>", 250, "2.1.0"},
      {"RCPT TO:<someone@example.org>", 250, "2.1.5"}},
     {"someone@example.org"}},
    {"each_address_once",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<root>", 250, "2.1.0"},
      {"RCPT TO:<root>", 250, "2.1.5"},
      {"RCPT TO:<postmaster>", 250, "2.1.5"},
      {"RCPT TO:<root@relay.test>", 250, "2.1.5"}},
     {"admin@example.com", "pm@example.com"}},
    {"limit_counts_the_addresses",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<root>", 250, "2.1.0"},
      {"RCPT TO:<x@example.org>", 250, "2.1.5"},
      {"RCPT TO:<team>", 452, "4.5.3"},
      {"RCPT TO:<postmaster>", 250, "2.1.5"},
      {"RCPT TO:<y@example.org>", 452, "4.5.3"}},
     {"x@example.org", "admin@example.com", "pm@example.com"}},
    {"alias_as_large_as_the_limit",
     {{"EHLO c", 250, ""}, {"MAIL FROM:<root>", 250, "2.1.0"}, {"RCPT TO:<team>", 250, "2.1.5"}},
     {"a@example.com", "b@example.com", "c@example.com"}},
    {"quoted_local_part_still_needs_a_domain",
     {{"EHLO c", 250, ""},
      {"MAIL FROM:<root>", 250, "2.1.0"},
      {"RCPT TO:<\"root\">", 501, "5.1.3"},
      {"RCPT TO:<.root>", 501, "5.1.3"}},
     {}},
};

class protocol_local : public testing::TestWithParam<dialogue> {};

TEST_P(protocol_local, replies_and_envelope) {
  const auto local = table();
  sender_router router(accounts());
  protocol_settings s;
  s.hostname = "relay.test";
  s.max_message_size = 1000;
  s.max_recipients = 3;
  s.local = local.get();
  smtp_protocol protocol(s, router);
  int index = 0;
  for (const auto& st : GetParam().steps) {
    auto outcome = protocol.on_command(st.line);
    EXPECT_EQ(outcome.reply.code, st.code)
        << "step " << index << ": " << st.line << " -> " << outcome.reply.wire();
    EXPECT_EQ(outcome.reply.enhanced, st.enhanced) << "step " << index << ": " << st.line;
    ++index;
  }
  std::vector<std::string> got;
  for (const auto& r : protocol.current_envelope().recipients) got.push_back(r.address);
  EXPECT_EQ(got, GetParam().recipients);
  EXPECT_EQ(protocol.current_envelope().sender, GetParam().sender);
}

INSTANTIATE_TEST_SUITE_P(dialogues, protocol_local, testing::ValuesIn(dialogues),
                         [](const auto& info) { return info.param.name; });

TEST(protocol_local, refusal_names_the_address) {
  const auto local = table();
  sender_router router(accounts());
  protocol_settings s;
  s.hostname = "relay.test";
  s.max_recipients = 100;
  s.local = local.get();
  smtp_protocol protocol(s, router);
  protocol.on_command("EHLO c");
  protocol.on_command("MAIL FROM:<root>");
  EXPECT_EQ(protocol.on_command("RCPT TO:<nobody>").reply.wire(),
            "550 5.1.1 <nobody@localhost>: no such local user here (no alias maps it)\r\n");
}

TEST(protocol_local, orcpt_keeps_the_address_given) {
  const auto local = table();
  sender_router router(accounts());
  protocol_settings s;
  s.hostname = "relay.test";
  s.max_recipients = 100;
  s.local = local.get();
  smtp_protocol protocol(s, router);
  protocol.on_command("EHLO c");
  protocol.on_command("MAIL FROM:<root>");
  protocol.on_command("RCPT TO:<postmaster> NOTIFY=FAILURE");
  protocol.on_command("RCPT TO:<root@relay.test> ORCPT=rfc822;r+2Bx@example.net");
  protocol.on_command("RCPT TO:<other@example.org>");
  const auto& r = protocol.current_envelope().recipients;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].address, "admin@example.com");
  EXPECT_EQ(r[0].params.orcpt, "rfc822;postmaster@localhost");
  EXPECT_TRUE(r[0].params.notify.failure);
  EXPECT_EQ(r[1].address, "pm@example.com");
  EXPECT_EQ(r[1].params.orcpt, "rfc822;postmaster@localhost");
  // root@relay.test adds nothing new (admin is there): the client's ORCPT goes nowhere.
  EXPECT_EQ(r[2].address, "other@example.org");
  EXPECT_EQ(r[2].params.orcpt, "");
}

TEST(protocol_local, without_a_table_bare_names_are_refused_as_before) {
  sender_router router(accounts());
  protocol_settings s;
  s.hostname = "relay.test";
  s.max_recipients = 100;
  smtp_protocol protocol(s, router);
  protocol.on_command("EHLO c");
  EXPECT_EQ(protocol.on_command("MAIL FROM:<root>").reply.code, 501);
  EXPECT_EQ(protocol.on_command("MAIL FROM:<root@localhost>").reply.code, 250);
  EXPECT_EQ(protocol.on_command("RCPT TO:<root@localhost>").reply.code, 250);
}

}  // namespace
}  // namespace oauth_relay::relay
