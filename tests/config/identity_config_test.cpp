// The keys of "who may send as which account": unix listeners, tls,
// clients.logins_file and require_login, accounts[].permit (names resolved
// against this system's users and groups), and the exposure warning.
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <fstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

const std::string oauth_keys = "oauth:\n  client_id: id\n  client_secret: s\n";

std::vector<std::string> errors_of(const std::string& yaml) {
  std::vector<std::string> out;
  for (const auto& e : parse(yaml, "c.yaml").errors) out.push_back(e.to_string());
  return out;
}

class scratch {
 public:
  scratch() {
    std::string pattern = (fs::temp_directory_path() / "identity_config.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = pattern;
  }
  ~scratch() { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

TEST(parse_listen, unix_sockets) {
  const auto unix_socket = parse_listen("unix:/run/oauth-relay/smtp.sock");
  ASSERT_TRUE(unix_socket);
  EXPECT_TRUE(unix_socket->is_unix());
  EXPECT_EQ(unix_socket->unix_path, fs::path("/run/oauth-relay/smtp.sock"));
  EXPECT_EQ(unix_socket->to_string(), "unix:/run/oauth-relay/smtp.sock");
  EXPECT_EQ(parse_listen("unix:/run/x/../smtp.sock")->unix_path, fs::path("/run/smtp.sock"));
  EXPECT_EQ(parse_listen("unix:relative.sock"), std::nullopt);
  EXPECT_EQ(parse_listen("unix:"), std::nullopt);
  EXPECT_EQ(parse_listen("unix:/" + std::string(106, 'a')).value().unix_path.string().size(), 107u);
  EXPECT_EQ(parse_listen("unix:/" + std::string(107, 'a')), std::nullopt);
}

TEST(listen_address, text_and_locality) {
  EXPECT_EQ(listen_address("::1", 25).to_string(), "[::1]:25");
  EXPECT_EQ(listen_address("127.0.0.1", 2525).to_string(), "127.0.0.1:2525");
  EXPECT_TRUE(listen_address("127.0.0.2", 25).is_local());
  EXPECT_TRUE(listen_address("::1", 25).is_local());
  EXPECT_TRUE(listen_address::unix_socket("/run/s").is_local());
  EXPECT_FALSE(listen_address("0.0.0.0", 25).is_local());
  EXPECT_FALSE(listen_address("::", 25).is_local());
  EXPECT_FALSE(listen_address("192.168.1.2", 25).is_local());
  EXPECT_FALSE(listen_address("::ffff:10.0.0.1", 25).is_local());
  EXPECT_TRUE(listen_address("::ffff:127.0.0.1", 25).is_local());
}

TEST(identity_config, listen_takes_unix_sockets_next_to_tcp) {
  const auto r = parse("listen: [\"127.0.0.1:25\", \"unix:/run/oauth-relay/smtp.sock\"]\n" +
                           oauth_keys + "accounts:\n  - address: a@example.com\n",
                       "c.yaml");
  ASSERT_THAT(r.errors, IsEmpty());
  EXPECT_EQ(r.value->listen,
            (std::vector<listen_address>{
                {"127.0.0.1", 25}, listen_address::unix_socket("/run/oauth-relay/smtp.sock")}));
}

TEST(identity_config, listen_errors) {
  EXPECT_THAT(
      errors_of("listen: [\"unix:smtp.sock\", \"unix:/s\", \"unix:/s\"]\n" + oauth_keys +
                "accounts:\n  - address: a@example.com\n"),
      ElementsAre(
          R"(c.yaml:1:10: listen[0]: expected "unix:" and an absolute path of at most 107 bytes, got "unix:smtp.sock")",
          R"(c.yaml:1:39: listen[2]: "unix:/s" is listed twice)"));
}

TEST(identity_config, tls_and_clients_keys) {
  scratch files;
  files.write("cert.pem", "x");
  files.write("key.pem", "x");
  const auto config = files.write("c.yaml",
                                  "tls:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                                  "clients:\n  logins_file: logins\n"
                                  "  require_login: true\n" +
                                      oauth_keys + "accounts:\n  - address: a@example.com\n");
  const auto r = load(config);
  ASSERT_THAT(r.errors, IsEmpty());
  ASSERT_TRUE(r.value->tls);
  EXPECT_EQ(r.value->tls->cert_file, files.dir() / "cert.pem");
  EXPECT_EQ(r.value->tls->key_file, files.dir() / "key.pem");
  // The logins file need not exist yet: oauth-relayctl login add creates it.
  EXPECT_EQ(r.value->clients_logins_file, files.dir() / "logins");
  EXPECT_TRUE(r.value->clients_require_login);
}

TEST(identity_config, tls_and_clients_errors) {
  EXPECT_THAT(
      errors_of("tls:\n  cert_file: /no/such/cert.pem\n  kye_file: k\n" + oauth_keys +
                "accounts:\n  - address: a@example.com\n"),
      ElementsAre(
          R"(c.yaml:1:1: tls: missing required key "key_file")",
          R"(c.yaml:2:14: tls.cert_file: cannot read /no/such/cert.pem: No such file or directory)",
          R"(c.yaml:3:3: tls: unknown key "kye_file" (did you mean "key_file"?))"));
  EXPECT_THAT(errors_of("clients:\n  require_login: true\n" + oauth_keys +
                        "accounts:\n  - address: a@example.com\n"),
              ElementsAre("c.yaml:2:18: clients.require_login: true needs clients.logins_file: no "
                          "client could ever log in"));
  EXPECT_THAT(
      errors_of("clients:\n  require_login: maybe\n" + oauth_keys +
                "accounts:\n  - address: a@example.com\n"),
      ElementsAre(R"(c.yaml:2:18: clients.require_login: expected true or false, got "maybe")"));
}

TEST(identity_config, permit_resolves_users_and_groups) {
  const auto r = parse("clients:\n  logins_file: /etc/oauth-relay/logins\n" + oauth_keys +
                           "accounts:\n"
                           "  - address: shop@example.com\n"
                           "    permit:\n"
                           "      local_users: [root]\n"
                           "      local_groups: [root]\n"
                           "      logins: [scanner, nas@lan]\n"
                           "  - address: open@example.com\n",
                       "c.yaml");
  ASSERT_THAT(r.errors, IsEmpty());
  const auto& permit = r.value->accounts[0].permit;
  ASSERT_TRUE(permit);
  EXPECT_EQ(permit->local_users, (std::vector<local_name>{{"root", 0}}));
  EXPECT_EQ(permit->local_groups, (std::vector<local_name>{{"root", 0}}));
  EXPECT_EQ(permit->logins, (std::vector<std::string>{"scanner", "nas@lan"}));
  EXPECT_FALSE(r.value->accounts[1].permit);
}

TEST(identity_config, permit_errors) {
  EXPECT_THAT(
      errors_of(oauth_keys + "accounts:\n"
                             "  - address: a@example.com\n"
                             "    permit:\n"
                             "      local_users: [root, no-such-user-oauthrelay]\n"
                             "      local_groups: [no-such-group-oauthrelay]\n"
                             "      logins: [scanner]\n"
                             "  - address: b@example.com\n"
                             "    permit: {}\n"
                             "  - address: c@example.com\n"
                             "    permit:\n"
                             "      local_user: [root]\n"),
      ElementsAre(
          R"(c.yaml:7:27: accounts[0].permit.local_users[1]: no local user "no-such-user-oauthrelay" on this system)",
          R"(c.yaml:8:22: accounts[0].permit.local_groups[0]: no local group "no-such-group-oauthrelay" on this system)",
          "c.yaml:9:15: accounts[0].permit.logins: needs clients.logins_file: without it no client "
          "can log in",
          "c.yaml:11:13: accounts[1].permit: expected at least one of local_users, local_groups or "
          "logins",
          R"(c.yaml:14:7: accounts[2].permit: unknown key "local_user" (did you mean "local_users"?))"));
  EXPECT_THAT(
      errors_of(
          "clients:\n  logins_file: l\n" + oauth_keys +
          "accounts:\n  - address: a@example.com\n    permit:\n      logins: [\"bad name\", -x]\n"),
      ElementsAre(
          R"(c.yaml:9:16: accounts[0].permit.logins[0]: expected a login name (letters, digits, ".", "_", "-", "@", "+"; at most 64), got "bad name")",
          R"(c.yaml:9:28: accounts[0].permit.logins[1]: expected a login name (letters, digits, ".", "_", "-", "@", "+"; at most 64), got "-x")"));
}

TEST(exposure_warnings, listeners_other_hosts_reach_without_tls_or_require_login) {
  settings s;
  s.listen = {
      {"127.0.0.1", 25}, listen_address::unix_socket("/run/s"), {"0.0.0.0", 25}, {"::", 587}};
  const auto warnings = exposure_warnings(s);
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_EQ(warnings[0],
            "listen \"0.0.0.0:25\" is reachable from other hosts, with neither tls nor "
            "clients.require_login: every client clients.allow lets in may send as each account "
            "without a permit, and no login could be offered to it safely");
  EXPECT_TRUE(warnings[1].starts_with("listen \"[::]:587\" is reachable"));
  s.clients_require_login = true;
  EXPECT_THAT(exposure_warnings(s), IsEmpty());
  s.clients_require_login = false;
  s.tls = tls_settings{"c", "k"};
  EXPECT_THAT(exposure_warnings(s), IsEmpty());
  settings loopback_only;
  EXPECT_THAT(exposure_warnings(loopback_only), IsEmpty());
}

TEST(is_login_name, table) {
  EXPECT_TRUE(is_login_name("scanner"));
  EXPECT_TRUE(is_login_name("nas-1.lan_2@office+x"));
  EXPECT_TRUE(is_login_name(std::string(64, 'a')));
  EXPECT_FALSE(is_login_name(std::string(65, 'a')));
  EXPECT_FALSE(is_login_name(""));
  EXPECT_FALSE(is_login_name("-x"));
  EXPECT_FALSE(is_login_name("a b"));
  EXPECT_FALSE(is_login_name("a:b"));
  EXPECT_FALSE(is_login_name("caf\xc3\xa9"));
}

}  // namespace
}  // namespace oauth_relay::config
