// The real oauth-relayctl import, accounts and test against the in-repo
// Google token endpoint and Gmail over real TLS: exact output lines, exit
// statuses, the token store afterwards, and no token on any output.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include <sqlite3.h>
#include "auth/token_store.hpp"
#include "db/sqlite.hpp"
#include "fakes/fake_gmail.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_gmail;
using fakes::fake_oauth;

constexpr const char* alice = "alice@example.com";
constexpr const char* alice_token = "1//alice-refresh-token";

struct upstream_options {
  bool trust_test_ca = true;
  std::uint16_t port = 0;  // 0: the fake Gmail
};

class ctl_accounts : public testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = pki_.write_ca(dir_.path() / "ca.pem");
    // As the package's tmpfiles.d makes it: oauth-relayctl run as root does
    // not create it.
    std::filesystem::create_directories(state_dir_);
    oauth_.add_account(alice, alice_token);
    gmail_.set_token_validator([this](const std::string& user, const std::string& token) {
      return oauth_.token_valid(user, token);
    });
    write_config();
  }

  void write_config(upstream_options o = upstream_options()) {
    std::ofstream out(config_);
    out << "listen: [\"127.0.0.1:0\"]\n"
        << "hostname: relay.test\n"
        << "state_dir: " << state_dir_.string() << "\n"
        << "health_socket: " << (dir_.path() / "health.sock").string() << "\n"
        << secrets_config(key_file_) << "upstream:\n"
        << "  host: 127.0.0.1\n"
        << "  port: " << (o.port ? o.port : gmail_.port()) << "\n"
        << "  tls: starttls\n";
    if (o.trust_test_ca) out << "  ca_file: " << ca_file_.string() << "\n";
    out << "oauth:\n"
        << "  client_id: \"" << fake_oauth::default_client_id << "\"\n"
        << "  client_secret: \"" << fake_oauth::default_client_secret << "\"\n"
        << "  auth_url: " << oauth_.auth_url() << "\n"
        << "  token_url: " << oauth_.token_url() << "\n"
        << "  ca_file: " << ca_file_.string() << "\n"
        << "accounts:\n"
        << "  - address: alice@example.com\n"
        << "    default: true\n"
        << "  - address: bob@example.com\n";
  }

  ctl_result ctl(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {"-c", config_.string()});
    auto r = run_ctl(args, input);
    for (const std::string& secret :
         {std::string(alice_token), std::string(fake_oauth::default_client_secret)}) {
      EXPECT_EQ(r.out.find(secret), std::string::npos) << "a secret on stdout";
      EXPECT_EQ(r.err.find(secret), std::string::npos) << "a secret on stderr";
    }
    return r;
  }

  void store(const std::string& address, const std::string& token) {
    auth::token_store s(state_dir_, token_key(key_file_));
    s.store_refresh_token(address, token);
  }

  std::optional<auth::account_record> stored(const std::string& address) {
    auth::token_store s(state_dir_, token_key(key_file_));
    return s.get(address);
  }

  std::string token_url() const { return oauth_.token_url(); }
  std::string gmail_at() const { return "127.0.0.1:" + std::to_string(gmail_.port()); }

  temp_dir dir_;
  fakes::test_pki pki_;
  fake_oauth oauth_{pki_};
  fake_gmail gmail_{fake_gmail::mode::starttls, pki_.issue({"localhost"}, {"127.0.0.1"})};
  std::filesystem::path ca_file_;
  std::filesystem::path config_ = dir_.path() / "config.yaml";
  std::filesystem::path state_dir_ = dir_.path() / "state";
  std::filesystem::path key_file_ = write_token_key(dir_.path());
};

// ---------------------------------------------------------------- import

TEST_F(ctl_accounts, import_from_a_file_checks_and_stores_the_token) {
  const auto file = dir_.path() / "token";
  std::ofstream(file) << "\n  " << alice_token << " \n\n";
  const auto r = ctl({"import", alice, "--refresh-token-file", file.string()});
  EXPECT_EQ(r.status, 0) << r.err;
  ASSERT_GE(r.out_lines.size(), 1u);
  EXPECT_EQ(r.out_lines[0],
            "imported a refresh token for alice@example.com (checked: Google issued an access "
            "token with it)");
  // Google's refresh answer (as the stand-in's) carries no id_token here.
  EXPECT_EQ(r.err_lines,
            std::vector<std::string>{
                "warning: Google's answer named no account (no id_token with an email), so it "
                "was not checked that this token belongs to alice@example.com; Gmail will refuse "
                "it at the first delivery if it does not. oauth-relayctl authorize "
                "alice@example.com checks the account."});
  const auto row = stored(alice);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->refresh_token, alice_token);
  EXPECT_EQ(row->state, auth::token_state::valid);
  EXPECT_TRUE(oauth_.token_valid(alice, row->access_token));
  EXPECT_EQ(oauth_.refreshes_served(), 1u);
}

TEST_F(ctl_accounts, import_reads_standard_input) {
  const auto r =
      ctl({"import", alice, "--refresh-token-file", "-"}, std::string(alice_token) + "\n");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(stored(alice)->refresh_token, alice_token);
}

TEST_F(ctl_accounts, import_refuses_an_empty_or_malformed_token) {
  auto r = ctl({"import", alice, "--refresh-token-file", "-"}, " \n\t\n");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: standard input holds no refresh token (it is empty)",
                "hint: put the refresh token in it, alone; or let oauth-relayctl authorize "
                "ADDRESS get one"}));
  r = ctl({"import", alice, "--refresh-token-file", "-"},
          std::string("{\"refresh_token\": \"") + alice_token + "\"}");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines.at(0),
            "error: standard input holds more than a refresh token (it contains spaces or line "
            "breaks)");
  EXPECT_FALSE(stored(alice));
  EXPECT_EQ(oauth_.token_requests(), 0u);
}

TEST_F(ctl_accounts, import_refuses_a_token_google_refuses) {
  const auto r = ctl({"import", alice, "--refresh-token-file", "-"}, "1//revoked-long-ago");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: Google refused the refresh token of alice@example.com (invalid_grant): it "
                "was revoked, or it expired after 7 days because the OAuth consent screen is in "
                "Testing; nothing was stored",
                "hint: publish the consent screen (Google Auth Platform > Audience > Publish app: "
                "In production), then run: oauth-relayctl authorize alice@example.com"}));
  EXPECT_FALSE(stored(alice));
}

TEST_F(ctl_accounts, import_no_verify_stores_without_asking_google) {
  const auto r =
      ctl({"import", alice, "--refresh-token-file", "-", "--no-verify"}, "1//not-checked");
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out_lines.at(0), "imported a refresh token for alice@example.com (not checked)");
  EXPECT_EQ(oauth_.token_requests(), 0u);
  const auto row = stored(alice);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->refresh_token, "1//not-checked");
  EXPECT_EQ(row->state, auth::token_state::expired);
}

TEST_F(ctl_accounts, import_with_the_token_endpoint_down_suggests_no_verify) {
  oauth_.fail_with_503(true);
  const auto r = ctl({"import", alice, "--refresh-token-file", "-"}, alice_token);
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(
      r.err_lines,
      (std::vector<std::string>{
          "error: the token endpoint " + token_url() + " answered HTTP 503; nothing was stored",
          "hint: Google's side is failing or throttling: try again in a few minutes "
          "(oauth-relayd retries by itself); or store the token unchecked with "
          "--no-verify"}));
}

TEST_F(ctl_accounts, run_as_root_the_database_stays_the_daemons) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  // The daemon's user owns state_dir; root runs oauth-relayctl before the
  // daemon ever created queue.db.
  constexpr uid_t daemon_uid = 65534;
  constexpr gid_t daemon_gid = 65534;
  std::filesystem::create_directories(state_dir_);
  std::filesystem::permissions(state_dir_, std::filesystem::perms::owner_all);
  ASSERT_EQ(::chown(state_dir_.c_str(), daemon_uid, daemon_gid), 0);
  // The token key is the daemon user's too (postinst makes it so), and
  // oauth-relayctl reads it as that user.
  ASSERT_EQ(::chown(key_file_.c_str(), daemon_uid, daemon_gid), 0);
  // oauth-relayctl works as that user, who must be able to reach the directory.
  std::filesystem::permissions(dir_.path(), std::filesystem::perms(0711));
  const auto r = ctl({"import", alice, "--refresh-token-file", "-", "--no-verify"}, "1//x");
  EXPECT_EQ(r.status, 0) << r.err;
  struct stat db {};
  ASSERT_EQ(::stat((state_dir_ / "queue.db").c_str(), &db), 0);
  EXPECT_EQ(db.st_uid, daemon_uid);
  EXPECT_EQ(db.st_gid, daemon_gid);
  EXPECT_EQ(db.st_mode & 0777, 0600u);
}

// ---------------------------------------------------------------- accounts

TEST_F(ctl_accounts, accounts_lists_configured_accounts_with_their_state) {
  ASSERT_EQ(ctl({"import", alice, "--refresh-token-file", "-"}, alice_token).status, 0);
  const auto r = ctl({"accounts"});
  EXPECT_EQ(r.status, 0) << r.err;
  // AUTHORIZED is when import stored the token: a moment ago, in UTC.
  std::vector<std::string> lines = r.out_lines;
  ASSERT_EQ(lines.size(), 4u) << r.out;
  const std::regex stamp("20[0-9][0-9]-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]Z");
  EXPECT_TRUE(std::regex_search(lines[1], stamp)) << lines[1];
  lines[1] = std::regex_replace(lines[1], stamp, "<import time>       ");
  EXPECT_EQ(lines, (std::vector<std::string>{
                       "ADDRESS            KIND     STATE    ACCESS TOKEN    AUTHORIZED            "
                       "LAST DELIVERY  LAST ERROR",
                       "alice@example.com  consent  valid    expires in 59m  <import time>         "
                       "-              -",
                       "bob@example.com    consent  missing  -               -                     "
                       "-              -",
                       "to authorize bob@example.com: oauth-relayctl authorize bob@example.com"}));
}

TEST_F(ctl_accounts, accounts_json_is_one_document) {
  ASSERT_EQ(ctl({"import", alice, "--refresh-token-file", "-"}, alice_token).status, 0);
  {
    auth::token_store s(state_dir_, token_key(key_file_));
    s.record_delivery(alice, 1796025600);  // 2026-11-30T08:00:00Z
    s.set_state("bob@example.com", auth::token_state::needs_reauth, "token revoked");
  }
  const auto r = ctl({"accounts", "--json"});
  EXPECT_EQ(r.status, 0) << r.err;
  const auto json = nlohmann::json::parse(r.out);
  ASSERT_EQ(json["accounts"].size(), 2u);
  const auto& a = json["accounts"][0];
  EXPECT_EQ(a["address"], alice);
  EXPECT_EQ(a["token_state"], "valid");
  EXPECT_GT(a["access_expires_in_seconds"].get<int>(), 3500);
  EXPECT_EQ(a["last_delivery"], "2026-11-30T08:00:00Z");
  EXPECT_TRUE(a["last_error"].is_null());
  EXPECT_EQ(a["configured"], true);
  EXPECT_TRUE(a["authorized_at"].is_string());  // when import stored the token
  const auto& b = json["accounts"][1];
  EXPECT_TRUE(b["authorized_at"].is_null());
  EXPECT_EQ(b["address"], "bob@example.com");
  EXPECT_TRUE(b["access_expires_in_seconds"].is_null());
  EXPECT_TRUE(b["last_delivery"].is_null());
}

// ---------------------------------------------------------------- test

TEST_F(ctl_accounts, test_walks_every_step_and_gives_a_verdict) {
  store(alice, alice_token);
  const auto r = ctl({"test", alice});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out_lines,
            (std::vector<std::string>{
                "[ok]     refresh token of alice@example.com in the token store",
                "[ok]     access token from " + token_url() + " (valid for 59m)",
                "[ok]     connect to " + gmail_at() + " with STARTTLS, certificate verified",
                "[ok]     authenticate as alice@example.com with XOAUTH2", "[ok]     quit",
                "verdict: alice@example.com can send mail through " + gmail_at()}));
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(gmail_.logins(), 1u);
  EXPECT_EQ(gmail_.commands().back(), "QUIT");
  EXPECT_EQ(stored(alice)->state, auth::token_state::valid);
}

TEST_F(ctl_accounts, test_with_a_revoked_token_says_invalid_grant) {
  store(alice, alice_token);
  oauth_.revoke(alice_token);
  const auto r = ctl({"test", alice});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out_lines, (std::vector<std::string>{
                             "[ok]     refresh token of alice@example.com in the token store",
                             "[failed] access token from " + token_url(),
                             "verdict: alice@example.com cannot send mail"}));
  // Stored a moment ago: too soon for the 7 days of Testing, so revoked.
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: Google refused the refresh token of alice@example.com (invalid_grant) 0 "
                "days after it was authorized, too soon for the 7 days of a consent screen in "
                "Testing: it was revoked (by the user at myaccount.google.com > Security, a "
                "password change, or an administrator)",
                "hint: run: oauth-relayctl authorize alice@example.com"}));
  EXPECT_EQ(gmail_.connections(), 0u);
}

TEST_F(ctl_accounts, test_a_week_after_consent_names_the_consent_screens_testing_status_first) {
  store(alice, alice_token);
  {
    // Authorized eight days ago, as a Testing consent screen's token dies.
    db::connection db(state_dir_ / "queue.db", SQLITE_OPEN_READWRITE);
    db.exec("UPDATE accounts SET authorized_at = strftime('%s', 'now') - 8 * 86400");
  }
  oauth_.revoke(alice_token);
  const auto r = ctl({"test", alice});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: Google refused the refresh token of alice@example.com (invalid_grant) 8 "
                "days after it was authorized: the OAuth consent screen is in Testing, where "
                "refresh tokens expire after 7 days",
                "hint: publish the consent screen (Google Auth Platform > Audience > Publish app: "
                "In production), then run: oauth-relayctl authorize alice@example.com"}));
}

TEST_F(ctl_accounts, test_with_gmail_refusing_the_token_says_535) {
  store(alice, alice_token);
  gmail_.reject_auth(1);
  const auto r = ctl({"test", alice});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out_lines.at(3), "[failed] authenticate as alice@example.com with XOAUTH2");
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: 127.0.0.1 refused the access token of alice@example.com (535 5.7.8 "
                "Username and Password not accepted. For more information, go to "
                "https://support.google.com/mail/?p=BadCredentials fake - gsmtp)",
                "hint: the token belongs to another Google account or lacks the scope "
                "https://mail.google.com/: run oauth-relayctl authorize alice@example.com, sign in "
                "as alice@example.com and leave the Gmail permission ticked"}));
}

TEST_F(ctl_accounts, test_with_an_unknown_ca_names_host_and_ca_file) {
  write_config({.trust_test_ca = false});
  store(alice, alice_token);
  const auto r = ctl({"test", alice});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out_lines.at(2), "[failed] connect to " + gmail_at() + " with STARTTLS");
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: the TLS certificate of " + gmail_at() +
                    " is not trusted (unable to get local issuer certificate)",
                "hint: upstream.ca_file is not set, so only the system's trusted CAs "
                "(/etc/ssl/certs) are used: update ca-certificates, or if a proxy intercepts TLS "
                "set upstream.ca_file to its CA certificate"}));
  EXPECT_EQ(gmail_.auth_attempts(), 0u);  // no token over an unverified connection
}

TEST_F(ctl_accounts, test_with_nothing_listening_says_connection_refused) {
  const auto port = unused_port();
  write_config({.port = port});
  store(alice, alice_token);
  const auto r = ctl({"test", alice});
  EXPECT_EQ(r.status, 1);
  const std::string at = "127.0.0.1:" + std::to_string(port);
  EXPECT_EQ(r.out_lines.at(2), "[failed] connect to " + at + " with STARTTLS");
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: cannot connect to " + at + ": connection refused",
                "hint: nothing accepts connections there: check upstream.host and upstream.port, "
                "and that no local firewall rejects outgoing connections to port " +
                    std::to_string(port)}));
}

TEST_F(ctl_accounts, test_without_a_token_says_to_authorize) {
  const auto r = ctl({"test", "bob@example.com"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{"error: no refresh token is stored for bob@example.com",
                                      "hint: run: oauth-relayctl authorize bob@example.com"}));
}

}  // namespace
}  // namespace oauth_relay::test_support
