// The config fuzz target's seed corpus and every input it ever crashed on
// (tests/fuzz/corpus/config), replayed in the ordinary build: each gives
// settings or one-line positioned errors, never an exception.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "config/config.hpp"

namespace oauth_relay::config {
namespace {

TEST(config_corpus, every_input_gives_settings_or_positioned_errors) {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(OAUTH_RELAY_CONFIG_CORPUS)) {
    SCOPED_TRACE(entry.path().filename().string());
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    load_result result;
    ASSERT_NO_THROW(result = parse(text, "corpus.yaml"));
    EXPECT_NE(result.value.has_value(), !result.errors.empty());
    const auto lines = 1 + std::count(text.begin(), text.end(), '\n');
    for (const auto& e : result.errors) {
      EXPECT_EQ(e.file, "corpus.yaml");
      EXPECT_FALSE(e.message.empty());
      EXPECT_EQ(e.message.find_first_of("\r\n"), std::string::npos) << e.message;
      EXPECT_LE(e.line, lines + 1) << e.to_string();
      EXPECT_EQ(e.line == 0, e.column == 0) << e.to_string();
    }
    ++files;
  }
  EXPECT_GE(files, 20u);
}

// yaml-cpp 0.7's LoadAll never returns on these (jbeder/yaml-cpp#1040); the
// fuzz target found the first.
TEST(config_files, stray_comma_is_an_error_not_a_hang) {
  const auto first = parse(", just\n", "c.yaml");
  ASSERT_EQ(first.errors.size(), 1u);
  EXPECT_EQ(first.errors[0].to_string(),
            "c.yaml:1:1: invalid YAML: unexpected \",\" outside a flow collection");
  const auto later = parse("hostname: x\n---\n, y\n", "c.yaml");
  ASSERT_EQ(later.errors.size(), 1u);
  EXPECT_EQ(later.errors[0].to_string(),
            "c.yaml:3:1: invalid YAML: unexpected \",\" outside a flow collection");
}

// yaml-cpp puts the offending octet into its message as it is; a CR there
// would break the one-line error (found by the fuzz target).
TEST(config_files, yaml_errors_stay_on_one_line) {
  const auto result = parse("a: \"\\\r\"\n", "c.yaml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].to_string(),
            "c.yaml:1:7: invalid YAML: unknown escape character: \\x0d");
  // Paths in messages too.
  const auto path = parse(
      "oauth:\n  client_id: x\n  client_secret_file: \"/no/such\\nfile\"\n"
      "accounts:\n  - address: a@example.com\n",
      "c.yaml");
  ASSERT_EQ(path.errors.size(), 1u);
  EXPECT_EQ(path.errors[0].to_string(),
            "c.yaml:3:23: oauth.client_secret_file: cannot read /no/such\\x0afile: No such file "
            "or directory");
}

// A file that never ends (a device, a runaway log) is refused instead of
// being read until memory runs out.
TEST(config_files, endless_files_are_refused) {
  const auto result = parse(
      "oauth:\n  client_id: x\n  client_secret_file: /dev/zero\n  ca_file: /dev/zero\n"
      "accounts:\n  - address: a@example.com\n",
      "endless.yaml");
  ASSERT_EQ(result.errors.size(), 2u);
  EXPECT_EQ(result.errors[0].to_string(),
            "endless.yaml:3:23: oauth.client_secret_file: cannot read /dev/zero: File too large");
  EXPECT_EQ(result.errors[1].to_string(),
            "endless.yaml:4:12: oauth.ca_file: cannot read /dev/zero: File too large");
  const auto config = load("/dev/zero");
  ASSERT_EQ(config.errors.size(), 1u);
  EXPECT_EQ(config.errors[0].to_string(), "/dev/zero: cannot read: File too large");
}

}  // namespace
}  // namespace oauth_relay::config
