// accounts[].service_account_file: Google's JSON key file (every field the JWT
// bearer grant needs, each bad one a clear error naming the file), its mode,
// and the domain pattern "*@example.com" it allows.
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "config/service_account_key.hpp"

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// The armor is what the config checks; OpenSSL reads the key when it signs
// (tests/auth/jwt_bearer_test.cpp uses a real one).
const std::string pem =
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";

nlohmann::json good_key() {
  return {{"type", "service_account"},
          {"project_id", "test-project"},
          {"private_key_id", "0123456789abcdef"},
          {"private_key", pem},
          {"client_email", "relay@test-project.iam.gserviceaccount.com"},
          {"client_id", "104857600000000000001"},
          {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
          {"token_uri", "https://oauth2.googleapis.com/token"},
          {"universe_domain", "googleapis.com"}};
}

std::string error_of(const nlohmann::json& key) {
  auto parsed = parse_service_account_key(key.dump(), "/etc/oauth-relay/sa.json");
  if (auto* e = std::get_if<std::string>(&parsed)) return *e;
  return "";
}

class scratch {
 public:
  scratch() {
    std::string pattern = (fs::temp_directory_path() / "service_account.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = pattern;
  }
  ~scratch() { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text, mode_t mode = 0600) const {
    std::ofstream(dir_ / name) << text;
    ::chmod((dir_ / name).c_str(), mode);
    return dir_ / name;
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

TEST(parse_service_account_key, takes_what_the_grant_needs) {
  auto parsed = parse_service_account_key(good_key().dump(), "/etc/oauth-relay/sa.json");
  ASSERT_TRUE(std::holds_alternative<service_account_key>(parsed)) << std::get<std::string>(parsed);
  const auto& key = std::get<service_account_key>(parsed);
  EXPECT_EQ(key.file, fs::path("/etc/oauth-relay/sa.json"));
  EXPECT_EQ(key.client_email, "relay@test-project.iam.gserviceaccount.com");
  EXPECT_EQ(key.client_id, "104857600000000000001");
  EXPECT_EQ(key.private_key_id, "0123456789abcdef");
  EXPECT_EQ(key.token_uri, "https://oauth2.googleapis.com/token");
  EXPECT_EQ(std::string(key.private_key), pem);
}

TEST(parse_service_account_key, every_bad_field_is_named_with_the_file) {
  const std::string f = "/etc/oauth-relay/sa.json";
  EXPECT_EQ(std::get<std::string>(parse_service_account_key("{not json", f)),
            f + " is not a service account key: expected the JSON key file Google's Cloud "
                "console downloads (IAM & Admin > Service accounts > Keys > Add key > JSON)");
  EXPECT_THAT(std::get<std::string>(parse_service_account_key("[1,2]", f)),
              HasSubstr(f + " is not a service account key"));

  auto without = [](const char* field) {
    auto k = good_key();
    k.erase(field);
    return k;
  };
  auto with = [](const char* field, nlohmann::json value) {
    auto k = good_key();
    k[field] = std::move(value);
    return k;
  };
  EXPECT_EQ(error_of(without("type")), f + ": missing \"type\"");
  EXPECT_EQ(error_of(with("type", "authorized_user")),
            f + ": \"type\" is \"authorized_user\", not \"service_account\" (an OAuth client's "
                "file goes in oauth.client_secret_file)");
  EXPECT_EQ(error_of(without("client_email")), f + ": missing \"client_email\"");
  EXPECT_EQ(error_of(with("client_email", "relay")),
            f + ": \"client_email\" is not an email address");
  EXPECT_EQ(error_of(with("client_email", 7)), f + ": \"client_email\" must be a non-empty string");
  EXPECT_EQ(error_of(without("client_id")), f + ": missing \"client_id\"");
  EXPECT_EQ(error_of(with("client_id", "abc")),
            f + ": \"client_id\" must be the service account's numeric client ID");
  EXPECT_EQ(error_of(without("private_key_id")), f + ": missing \"private_key_id\"");
  EXPECT_EQ(error_of(with("private_key_id", "")),
            f + ": \"private_key_id\" must be a non-empty string");
  EXPECT_EQ(error_of(with("private_key_id", "xyz")),
            f + ": \"private_key_id\" must be the key's hexadecimal ID");
  EXPECT_EQ(error_of(without("token_uri")), f + ": missing \"token_uri\"");
  EXPECT_EQ(error_of(with("token_uri", "http://oauth2.googleapis.com/token")),
            f + ": \"token_uri\" must be an https:// URL (Google's is "
                "https://oauth2.googleapis.com/token)");
  EXPECT_EQ(error_of(without("private_key")), f + ": missing \"private_key\"");
  const std::string not_pem = error_of(with("private_key", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"));
  EXPECT_EQ(not_pem, f + ": \"private_key\" is not a PEM private key (-----BEGIN PRIVATE KEY----- "
                         "... -----END PRIVATE KEY-----)");
  EXPECT_THAT(not_pem, Not(HasSubstr("MIIE")));  // never quoted
}

TEST(read_service_account_key, refuses_a_key_other_users_may_read) {
  scratch s;
  const auto file = s.write("sa.json", good_key().dump(), 0644);
  auto read = read_service_account_key(file);
  ASSERT_TRUE(std::holds_alternative<std::string>(read));
  EXPECT_EQ(std::get<std::string>(read),
            file.string() +
                " may be read by every user (mode 0644): its key sends mail as any mailbox of "
                "the domain; run chmod 0640 " +
                file.string() + " (group oauth-relay) or chmod 0600");
  ::chmod(file.c_str(), 0640);
  EXPECT_TRUE(std::holds_alternative<service_account_key>(read_service_account_key(file)));
}

TEST(read_service_account_key, missing_directory_and_oversized_files) {
  scratch s;
  EXPECT_EQ(std::get<std::string>(read_service_account_key(s.dir() / "none.json")),
            "cannot read " + (s.dir() / "none.json").string() + ": No such file or directory");
  EXPECT_EQ(std::get<std::string>(read_service_account_key(s.dir())),
            s.dir().string() + " is not a regular file");
  const auto big = s.write("big.json", std::string(70 * 1024, ' '));
  EXPECT_EQ(std::get<std::string>(read_service_account_key(big)),
            big.string() + " is larger than 64 KiB; it is not a service account key");
}

TEST(pattern_covers, any_local_part_of_the_domain_without_case) {
  EXPECT_TRUE(pattern_covers("*@example.com", "alice@example.com"));
  EXPECT_TRUE(pattern_covers("*@example.com", "Bob@EXAMPLE.com"));
  EXPECT_FALSE(pattern_covers("*@example.com", "alice@sub.example.com"));
  EXPECT_FALSE(pattern_covers("*@example.com", "alice@example.org"));
  EXPECT_FALSE(pattern_covers("*@example.com", "@example.com"));
  EXPECT_FALSE(pattern_covers("*@example.com", "example.com"));
  EXPECT_FALSE(pattern_covers("alice@example.com", "alice@example.com"));  // not a pattern
}

const std::string oauth_keys = "oauth:\n  client_id: id\n  client_secret: s\n";

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& e : parse(yaml, "c.yaml").errors) out.push_back(e.to_string());
  return out;
}

TEST(service_account_config, a_pattern_and_a_listed_account_share_one_key_file) {
  scratch s;
  const auto key = s.write("sa.json", good_key().dump());
  const auto loaded = parse(oauth_keys + "accounts:\n  - address: \"*@example.com\"\n" +
                                "    service_account_file: " + key.string() +
                                "\n  - address: noreply@example.org\n"
                                "    service_account_file: " +
                                key.string() + "\n  - address: alice@example.net\n",
                            "c.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  const auto& accounts = loaded.value->accounts;
  ASSERT_EQ(accounts.size(), 3u);
  EXPECT_TRUE(accounts[0].is_domain_pattern());
  ASSERT_TRUE(accounts[0].service_account);
  EXPECT_EQ(accounts[0].service_account->client_email,
            "relay@test-project.iam.gserviceaccount.com");
  EXPECT_THAT(accounts[0].senders, ElementsAre("*@example.com"));
  EXPECT_FALSE(accounts[1].is_domain_pattern());
  ASSERT_TRUE(accounts[1].service_account);
  EXPECT_THAT(accounts[1].senders, ElementsAre("noreply@example.org"));
  EXPECT_FALSE(accounts[2].service_account);
}

TEST(service_account_config, errors_name_the_key_and_the_file) {
  scratch s;
  const auto open_key = s.write("open.json", good_key().dump(), 0644);
  const auto good = s.write("sa.json", good_key().dump());
  EXPECT_THAT(
      errors_of(oauth_keys + "accounts:\n  - address: \"*@example.com\"\n"),
      ElementsAre("c.yaml:5:14: accounts[0].address: \"*@example.com\": a domain pattern needs "
                  "service_account_file (a Google Workspace service account with domain-wide "
                  "delegation)"));
  EXPECT_THAT(errors_of(oauth_keys + "accounts:\n  - address: \"*@exa mple\"\n" +
                        "    service_account_file: " + good.string() + "\n"),
              ElementsAre("c.yaml:5:14: accounts[0].address: \"*@exa mple\" is not a domain "
                          "pattern like *@example.com"));
  EXPECT_THAT(errors_of(oauth_keys + "accounts:\n  - address: \"*@example.com\"\n" +
                        "    service_account_file: " + good.string() +
                        "\n    senders: [\"a@example.com\"]\n"),
              ElementsAre("c.yaml:7:14: accounts[0].senders: a domain pattern account takes the "
                          "senders of its domain, each as itself; leave senders out"));
  EXPECT_THAT(errors_of(oauth_keys + "accounts:\n  - address: \"*@example.com\"\n" +
                        "    default: true\n    service_account_file: " + good.string() + "\n"),
              ElementsAre("c.yaml:7:27: accounts[0].service_account_file: a domain pattern "
                          "cannot be the default account (the null sender is no mailbox)"));
  EXPECT_THAT(errors_of(oauth_keys + "accounts:\n  - address: a@example.com\n" +
                        "    service_account_file: " + open_key.string() + "\n"),
              ElementsAre(HasSubstr("c.yaml:6:27: accounts[0].service_account_file: " +
                                    open_key.string() + " may be read by every user (mode 0644)")));
}

TEST(service_account_config, only_service_accounts_need_no_oauth_section) {
  scratch s;
  const auto key = s.write("sa.json", good_key().dump());
  const auto loaded = parse(
      "accounts:\n  - address: \"*@example.com\"\n"
      "    service_account_file: " +
          key.string() + "\n",
      "c.yaml");
  ASSERT_TRUE(loaded.errors.empty()) << loaded.errors.front().to_string();
  EXPECT_FALSE(loaded.value->oauth.present);
  // An account authorized by consent needs the OAuth client.
  EXPECT_THAT(errors_of("accounts:\n  - address: \"*@example.com\"\n"
                        "    service_account_file: " +
                        key.string() + "\n  - address: alice@example.net\n"),
              ElementsAre("c.yaml:1:1: missing required key \"oauth\" (the OAuth client of "
                          "alice@example.net, an account authorized by consent)"));
}

}  // namespace
}  // namespace oauth_relay::config
