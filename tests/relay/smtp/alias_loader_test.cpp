// Loading the local addresses from a configuration: the default domains,
// an aliases_file that cannot be read, its entries after `aliases`, and the
// warning when oauth-relay-sendmail's domain is not a local one.
#include "relay/smtp/alias_loader.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "config/config.hpp"

namespace oauth_relay::relay {
namespace {

using testing::Contains;
using testing::ElementsAre;

config::settings with_hostname(const std::string& hostname) {
  config::settings s;
  s.source = "config.yaml";
  s.hostname = hostname;
  return s;
}

TEST(alias_loader, default_domains_start_with_localhost_and_hostname) {
  const auto domains = default_local_domains("Relay.Example.com");
  ASSERT_GE(domains.size(), 2u);
  EXPECT_EQ(domains[0], "localhost");
  EXPECT_EQ(domains[1], "relay.example.com");
  EXPECT_THAT(domains, Contains(config::default_hostname()));
}

TEST(alias_loader, an_unreadable_aliases_file_is_an_error) {
  auto s = with_hostname("relay.test");
  s.local.aliases_file = "/nonexistent/aliases";
  const auto loaded = load_local_addresses(s);
  EXPECT_FALSE(loaded.table);
  EXPECT_THAT(loaded.errors, ElementsAre("/nonexistent/aliases: aliases_file cannot be read: No "
                                         "such file or directory"));
}

TEST(alias_loader, file_entries_come_after_the_config_and_resolve_with_them) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("alias_loader_test." + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto file = dir / "aliases";
  std::ofstream(file) << "postmaster: root\nroot: file@example.com\nlist: \"|/bin/true\"\n";
  auto s = with_hostname("relay.test");
  s.local.domains = {"relay.test"};
  s.local.aliases = {{"root", {"config@example.com"}, "config.yaml", 4}};
  s.local.aliases_file = file;
  const auto loaded = load_local_addresses(s);
  ASSERT_TRUE(loaded.table);
  EXPECT_EQ(loaded.table->expand("postmaster@relay.test").addresses,
            std::vector<std::string>{"config@example.com"});
  EXPECT_THAT(loaded.warnings,
              ElementsAre(file.string() + ":3: alias \"list\": the command \"|/bin/true\" is "
                                          "skipped: the relay delivers no mail on this host "
                                          "itself",
                          file.string() + ":3: alias \"list\" is left out: it has no address the "
                                          "relay can send to",
                          file.string() + ":2: alias \"root\" is also given at config.yaml:4, "
                                          "which is the one used"));
  std::filesystem::remove_all(dir);
}

TEST(alias_loader, warns_when_hostname_is_not_a_local_domain) {
  auto s = with_hostname("relay.test");
  s.local.domains = {"localhost"};
  s.local.aliases = {{"*", {"ops@example.com"}, "config.yaml", 2}};
  const auto loaded = load_local_addresses(s);
  ASSERT_TRUE(loaded.table);
  EXPECT_THAT(loaded.warnings,
              ElementsAre("config.yaml: local_domains does not include hostname \"relay.test\": "
                          "`oauth-relay-sendmail root` would send root@relay.test on to Gmail"));
}

}  // namespace
}  // namespace oauth_relay::relay
