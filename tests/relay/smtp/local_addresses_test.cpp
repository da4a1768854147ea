// The alias table as tables: what each recipient becomes, which tables are
// refused and with which error (file and line), and how an aliases(5) file
// reads.
#include "relay/smtp/local_addresses.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace oauth_relay::relay {
namespace {

using kind = local_addresses::expansion::kind;
using testing::ElementsAre;
using testing::HasSubstr;

config::alias_entry alias(std::string name, std::vector<std::string> targets, int line = 1) {
  return {std::move(name), std::move(targets), "config.yaml", line};
}

const std::vector<std::string> domains = {"localhost", "relay.example.com"};

std::shared_ptr<const local_addresses> table(const std::vector<config::alias_entry>& aliases) {
  auto built = local_addresses::build(domains, aliases, 100);
  EXPECT_THAT(built.errors, ElementsAre());
  return built.table;
}

struct lookup_row {
  std::string address;
  kind what;
  std::vector<std::string> addresses;
};

TEST(local_addresses, expands_recipients) {
  const auto t = table({
      alias("root", {"admin@example.com"}),
      alias("postmaster", {"root"}),
      alias("webmaster@relay.example.com", {"web@example.com", "root@localhost"}),
      alias("ops", {"Admin@Example.com", "root", "oncall@example.org"}),
  });
  const std::vector<lookup_row> rows = {
      {"root@localhost", kind::expanded, {"admin@example.com"}},
      {"ROOT@LocalHost", kind::expanded, {"admin@example.com"}},
      {"root@relay.example.com", kind::expanded, {"admin@example.com"}},
      {"root", kind::expanded, {"admin@example.com"}},
      {"postmaster@localhost", kind::expanded, {"admin@example.com"}},
      // A full address's alias is for that address only.
      {"webmaster@relay.example.com", kind::expanded, {"web@example.com", "admin@example.com"}},
      {"webmaster@localhost", kind::unknown, {}},
      // Each address once, compared without case.
      {"ops@localhost", kind::expanded, {"Admin@Example.com", "oncall@example.org"}},
      {"nobody@localhost", kind::unknown, {}},
      {"root@example.com", kind::not_local, {}},
      {"root@sub.localhost", kind::not_local, {}},
  };
  for (const auto& row : rows) {
    const auto got = t->expand(row.address);
    EXPECT_EQ(got.what, row.what) << row.address;
    EXPECT_EQ(got.addresses, row.addresses) << row.address;
  }
}

TEST(local_addresses, catch_all_takes_every_other_local_name) {
  const auto t = table({alias("root", {"admin@example.com"}), alias("*", {"ops@example.com"})});
  EXPECT_EQ(t->expand("root@localhost").addresses, std::vector<std::string>{"admin@example.com"});
  EXPECT_EQ(t->expand("www-data@relay.example.com").addresses,
            std::vector<std::string>{"ops@example.com"});
  EXPECT_EQ(t->expand("x@example.net").what, kind::not_local);
}

TEST(local_addresses, qualifies_bare_names_with_the_first_domain) {
  const auto t = table({});
  EXPECT_EQ(t->qualify("root"), "root@localhost");
  EXPECT_EQ(t->qualify("a@b.example"), "a@b.example");
  auto other = local_addresses::build({"Relay.Example.com", "localhost"}, {}, 100);
  EXPECT_EQ(other.table->qualify("cron"), "cron@relay.example.com");
}

TEST(local_addresses, warns_when_root_or_postmaster_has_no_alias) {
  auto built = local_addresses::build(domains, {alias("root", {"a@example.com"})}, 100);
  ASSERT_TRUE(built.table);
  EXPECT_THAT(built.warnings, ElementsAre(HasSubstr("no alias for postmaster: mail for "
                                                    "<postmaster@localhost> is refused")));
  built = local_addresses::build(domains, {alias("*", {"a@example.com"})}, 100);
  EXPECT_THAT(built.warnings, ElementsAre());
}

struct refusal_row {
  std::string name;
  std::vector<config::alias_entry> aliases;
  std::vector<std::string> errors;
};

TEST(local_addresses, refuses_tables_that_cannot_work) {
  std::vector<config::alias_entry> chain;
  for (int i = 0; i <= static_cast<int>(max_alias_depth); ++i) {
    chain.push_back(alias("a" + std::to_string(i), {"a" + std::to_string(i + 1)}, i + 1));
  }
  chain.push_back(alias("a" + std::to_string(max_alias_depth + 1), {"end@example.com"}, 99));
  std::vector<std::string> many;
  for (int i = 0; i < 101; ++i) many.push_back("u" + std::to_string(i) + "@example.com");

  const std::vector<refusal_row> rows = {
      {"self_loop",
       {alias("root", {"root"}, 3)},
       {"config.yaml:3: alias loop: root -> root (config.yaml:3)"}},
      {"two_step_loop",
       {alias("root", {"admin"}, 2), alias("admin", {"ops@localhost", "x@example.com"}, 5),
        alias("ops", {"root@relay.example.com"}, 7)},
       {"config.yaml:2: alias loop: root -> admin -> ops -> root (config.yaml:2, config.yaml:5, "
        "config.yaml:7)"}},
      {"loop_through_catch_all",
       {alias("*", {"nobody"}, 4)},
       {"config.yaml:4: alias loop: * -> * (config.yaml:4)"}},
      {"unmapped_local_target",
       {alias("root", {"admin", "a@example.com"}, 6)},
       {"config.yaml:6: alias \"root\": \"admin\" is a local address that no alias maps (give a "
        "full address, or an alias for it)"}},
      {"full_address_in_another_domain",
       {alias("info@example.com", {"a@example.com"}, 8)},
       {"config.yaml:8: alias \"info@example.com\": \"example.com\" is not one of the local "
        "domains (localhost, relay.example.com); only local addresses are aliased"}},
      {"too_deep",
       chain,
       {"config.yaml:2: alias \"a1\" goes through more than 10 aliases before it reaches an "
        "address"}},
      {"more_than_max_recipients",
       {alias("all", many, 9)},
       {"config.yaml:9: alias \"all\" stands for 101 addresses, more than "
        "limits.max_recipients (100): no message to it could be taken"}},
  };
  for (const auto& row : rows) {
    auto built = local_addresses::build(domains, row.aliases, 100);
    EXPECT_FALSE(built.table) << row.name;
    EXPECT_EQ(built.errors, row.errors) << row.name;
  }
}

TEST(local_addresses, a_name_given_twice_keeps_the_first) {
  auto built = local_addresses::build(
      domains,
      {alias("root", {"a@example.com"}, 1), {"ROOT", {"b@example.com"}, "/etc/aliases", 4}}, 100);
  ASSERT_TRUE(built.table);
  EXPECT_EQ(built.table->expand("root@localhost").addresses,
            std::vector<std::string>{"a@example.com"});
  EXPECT_THAT(built.warnings,
              testing::Contains("/etc/aliases:4: alias \"ROOT\" is also given at config.yaml:1, "
                                "which is the one used"));
}

TEST(local_addresses, resolved_table_lists_each_alias_in_order) {
  const auto t = table({alias("postmaster", {"root"}, 2), alias("root", {"a@example.com"}, 3)});
  ASSERT_EQ(t->resolved().size(), 2u);
  EXPECT_EQ(t->resolved()[0].name, "postmaster");
  EXPECT_EQ(t->resolved()[0].addresses, std::vector<std::string>{"a@example.com"});
  EXPECT_EQ(t->resolved()[0].origin, "config.yaml:2");
}

TEST(aliases_file, reads_the_system_format) {
  const std::string text =
      "# /etc/aliases\n"
      "mailer-daemon: postmaster\n"
      "postmaster:\troot\n"
      "\n"
      "  # an indented comment\n"
      "root: admin@example.com,\n"
      "   second@example.com , \"third\"@example.com\n"
      "\"quoted name\": x@example.com\n"
      "Abuse : root\r\n";
  const auto r = parse_aliases_file(text, "/etc/aliases");
  // No address could carry a space unquoted: refused, with the line.
  EXPECT_THAT(r.errors, ElementsAre("/etc/aliases:8: \"quoted name\" is not a local name"));
  EXPECT_THAT(r.warnings, ElementsAre());
  const std::vector<config::alias_entry> expected = {
      {"mailer-daemon", {"postmaster"}, "/etc/aliases", 2},
      {"postmaster", {"root"}, "/etc/aliases", 3},
      {"root",
       {"admin@example.com", "second@example.com", "\"third\"@example.com"},
       "/etc/aliases",
       6},
      {"Abuse", {"root"}, "/etc/aliases", 9},
  };
  EXPECT_EQ(r.entries, expected);
}

TEST(aliases_file, skips_what_a_relay_cannot_deliver_to) {
  const std::string text =
      "mailman: \"|/var/lib/mailman/mail/mailman post mylist\"\n"
      "archive: /var/mail/archive, keep@example.com\n"
      "staff: :include:/etc/mail/staff\n"
      "root: \\root, admin@example.com\n";
  const auto r = parse_aliases_file(text, "aliases");
  EXPECT_THAT(r.errors, ElementsAre());
  const std::vector<config::alias_entry> expected = {
      {"archive", {"keep@example.com"}, "aliases", 2},
      {"root", {"admin@example.com"}, "aliases", 4},
  };
  EXPECT_EQ(r.entries, expected);
  EXPECT_THAT(r.warnings,
              ElementsAre("aliases:1: alias \"mailman\": the command "
                          "\"|/var/lib/mailman/mail/mailman post mylist\" is skipped: the relay "
                          "delivers no mail on this host itself",
                          "aliases:1: alias \"mailman\" is left out: it has no address the "
                          "relay can send to",
                          HasSubstr("aliases:2: alias \"archive\": the file /var/mail/archive"),
                          HasSubstr("aliases:3: alias \"staff\": the include :include:"),
                          HasSubstr("aliases:3: alias \"staff\" is left out"),
                          HasSubstr("aliases:4: alias \"root\": the local mailbox \\root")));
}

TEST(aliases_file, reports_bad_lines_with_their_number) {
  const auto r = parse_aliases_file(
      "root admin@example.com\nok: a@example.com\nbad: a b@example.com\nok: b@example.com\n",
      "/etc/aliases");
  EXPECT_THAT(r.errors, ElementsAre("/etc/aliases:1: expected \"name: address, ...\"",
                                    "/etc/aliases:3: alias \"bad\": \"a b@example.com\" is not "
                                    "an address or a local name"));
  EXPECT_THAT(r.warnings,
              ElementsAre("/etc/aliases:4: alias \"ok\" is given again; the first one is used"));
  ASSERT_EQ(r.entries.size(), 1u);
}

}  // namespace
}  // namespace oauth_relay::relay
