// The keys of "mail for root reaches a person": local_domains, aliases and
// aliases_file as the config reads them (their form; the table itself is
// resolved by relay/smtp/local_addresses and tested there).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"

namespace oauth_relay::config {
namespace {

using ::testing::ElementsAre;

const std::string base =
    "oauth:\n  client_id: id\n  client_secret: s\naccounts:\n  - address: a@example.com\n";

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& e : parse(yaml, "c.yaml").errors) out.push_back(e.to_string());
  return out;
}

TEST(local_addresses_config, defaults_are_empty) {
  const auto r = parse(base, "c.yaml");
  ASSERT_TRUE(r.value);
  EXPECT_TRUE(r.value->local.domains.empty());
  EXPECT_TRUE(r.value->local.aliases.empty());
  EXPECT_FALSE(r.value->local.aliases_file);
}

TEST(local_addresses_config, reads_domains_aliases_and_file) {
  const auto r = parse(base +
                           "local_domains: [localhost, Relay.Example.com, localhost]\n"
                           "aliases:\n"
                           "  root: [admin@example.com, second@example.com]\n"
                           "  postmaster: root\n"
                           "  \"*\": [ops@example.com]\n"
                           "  webmaster@relay.example.com: [web@example.com]\n"
                           "aliases_file: /etc/aliases\n",
                       "c.yaml");
  ASSERT_TRUE(r.value) << (r.errors.empty() ? "" : r.errors[0].to_string());
  const auto& local = r.value->local;
  EXPECT_EQ(local.domains, (std::vector<std::string>{"localhost", "relay.example.com"}));
  EXPECT_THAT(
      local.aliases,
      ElementsAre(alias_entry{"root", {"admin@example.com", "second@example.com"}, "c.yaml", 8},
                  alias_entry{"postmaster", {"root"}, "c.yaml", 9},
                  alias_entry{"*", {"ops@example.com"}, "c.yaml", 10},
                  alias_entry{"webmaster@relay.example.com", {"web@example.com"}, "c.yaml", 11}));
  EXPECT_EQ(local.aliases_file, std::filesystem::path("/etc/aliases"));
}

TEST(local_addresses_config, errors_name_line_and_key) {
  EXPECT_THAT(errors_of(base + "local_domains: [localhost, \"not a domain\"]\n"),
              ElementsAre("c.yaml:6:28: local_domains[1]: expected a domain name, got \"not a "
                          "domain\""));
  EXPECT_THAT(errors_of(base + "local_domains: []\n"),
              ElementsAre("c.yaml:6:16: local_domains: expected at least one domain name, got "
                          "an empty list"));
  EXPECT_THAT(errors_of(base + "aliases: [root]\n"),
              ElementsAre("c.yaml:6:10: aliases: expected a mapping of names to addresses, got a "
                          "list"));
  EXPECT_THAT(errors_of(base + "aliases:\n  root: []\n"),
              ElementsAre("c.yaml:7:9: aliases.root: expected at least one address, got an empty "
                          "list"));
  EXPECT_THAT(errors_of(base + "aliases:\n  root: [\"a b\"]\n"),
              ElementsAre("c.yaml:7:10: aliases.root[0]: expected an email address or a local "
                          "name, got \"a b\""));
  EXPECT_THAT(errors_of(base + "aliases:\n  \"a b\": [x@example.com]\n"),
              ElementsAre("c.yaml:7:3: aliases: \"a b\" is neither a local name (root), a full "
                          "address nor \"*\""));
  EXPECT_THAT(errors_of(base + "aliases:\n  root: x@example.com\n  ROOT: y@example.com\n"),
              ElementsAre("c.yaml:8:3: aliases: \"ROOT\" is given twice"));
}

}  // namespace
}  // namespace oauth_relay::config
