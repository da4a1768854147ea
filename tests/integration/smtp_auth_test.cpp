// SMTP AUTH and STARTTLS with the real daemon: logins permitted for one
// account and refused for another, wrong passwords and hostile AUTH
// dialogues, swaks and Python's smtplib over STARTTLS, commands pipelined
// behind STARTTLS, secrets kept out of the debug log, reloads of the
// certificate and the logins, --check-config, and oauth-relayctl login.
#include <gtest/gtest.h>

#include <crypt.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <memory>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/smtp/logins.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;

constexpr const char* scanner_password = "Scanner-Pa55word-7f3e";
constexpr const char* nas_password = "nas:with spaces & symbols";

std::string plain(const std::string& user, const std::string& password) {
  return base64_encode(std::string("\0", 1) + user + std::string("\0", 1) + password);
}

std::string sha512_of(const std::string& password) {
  crypt_data data{};
  return crypt_r(password.c_str(), "$6$rounds=5000$saltsalt$", &data);
}

class smtp_auth : public testing::Test {
 protected:
  void SetUp() override {
    const auto pair = pki_.issue({"relay.test"}, {"127.0.0.1"});
    write("cert.pem", pair.certificate + pki_.ca_certificate());
    write("key.pem", pair.private_key);
    pki_.write_ca(files_.path() / "ca.pem");
    write_logins("# LAN devices\nscanner:" + *relay::hash_password(secret(scanner_password)) +
                     "\nnas:" + sha512_of(nas_password) + "\n",
                 0640);
  }

  void write(const std::string& name, const std::string& text) {
    std::ofstream(files_.path() / name, std::ios::trunc) << text;
  }
  void write_logins(const std::string& text, mode_t mode) {
    write("logins", text);
    ::chmod((files_.path() / "logins").c_str(), mode);
  }
  std::string path(const std::string& name) const { return (files_.path() / name).string(); }

  std::string body(const std::string& clients_extra = "") const {
    return "hostname: relay.test\n"
           "tls:\n  cert_file: " +
           path("cert.pem") + "\n  key_file: " + path("key.pem") +
           "\nclients:\n  logins_file: " + path("logins") + "\n" + clients_extra +
           "oauth:\n  client_id: \"id.apps.googleusercontent.com\"\n  client_secret: \"s\"\n"
           "accounts:\n"
           "  - address: shop@example.com\n    permit:\n      logins: [scanner]\n"
           "  - address: ops@example.com\n    permit:\n      logins: [nas]\n"
           "  - address: open@example.com\n";
  }

  void start(const std::string& clients_extra = "") {
    relay_ = std::make_unique<relay_process>(body(clients_extra));
    relay_->add_argument("--log-level=debug");
    relay_->start();
  }

  // Greeting and EHLO done.
  std::unique_ptr<smtp_client> greeted() {
    auto client = std::make_unique<smtp_client>(relay_->port());
    EXPECT_EQ(client->read_reply().code, 220);
    EXPECT_EQ(client->command("EHLO client.test").code, 250);
    return client;
  }

  std::string port() const { return std::to_string(relay_->port()); }

  temp_dir files_;
  fakes::test_pki pki_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(smtp_auth, a_login_sends_as_the_account_that_permits_it_and_no_other) {
  start();
  auto client = greeted();
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", scanner_password)).str(),
            "235 2.7.0 Authentication successful");
  EXPECT_EQ(client->command("MAIL FROM:<ops@example.com>").str(),
            "550 5.7.1 Sender <ops@example.com> is not allowed to send through this relay");
  EXPECT_EQ(client->command("MAIL FROM:<shop@example.com>").str(), "250 2.1.0 Ok");
  EXPECT_EQ(client->command("RCPT TO:<r@example.org>").code, 250);
  EXPECT_EQ(client->command("DATA").code, 354);
  client->send("Subject: scan\r\n\r\npage 1\r\n.\r\n");
  EXPECT_EQ(client->read_reply().code, 250);
  EXPECT_TRUE(relay_->wait_for_log("login=scanner"));
  EXPECT_NE(relay_->log().find("event=message_accepted"), std::string::npos);
  EXPECT_NE(relay_->log().find("account=shop@example.com recipients=1 size="), std::string::npos);
  EXPECT_NE(relay_->log().find("event=sender_refused session=1 client=127.0.0.1 uid=0 "
                               "login=scanner from=ops@example.com account=ops@example.com"),
            std::string::npos)
      << relay_->log();

  // AUTH LOGIN, and a SHA-512-crypt hash.
  auto nas = greeted();
  EXPECT_EQ(nas->command("AUTH LOGIN").str(), "334 VXNlcm5hbWU6");
  EXPECT_EQ(nas->command(base64_encode("nas")).str(), "334 UGFzc3dvcmQ6");
  EXPECT_EQ(nas->command(base64_encode(nas_password)).str(), "235 2.7.0 Authentication successful");
  EXPECT_EQ(nas->command("MAIL FROM:<shop@example.com>").code, 550);
  EXPECT_EQ(nas->command("MAIL FROM:<ops@example.com>").code, 250);
}

TEST_F(smtp_auth, wrong_passwords_get_535_and_the_third_closes_the_session) {
  start();
  auto client = greeted();
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", "wrong")).str(),
            "535 5.7.8 Authentication credentials invalid");
  // An unknown name reads the same.
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("nobody", scanner_password)).str(),
            "535 5.7.8 Authentication credentials invalid");
  EXPECT_EQ(client->command("NOOP").code, 250);
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("nas", scanner_password)).str(),
            "421 4.7.0 relay.test Too many failed logins, closing connection");
  EXPECT_TRUE(client->wait_closed());
  EXPECT_TRUE(relay_->wait_for_log("login=nas action=\"closing the session\""));
  EXPECT_NE(relay_->log().find("event=login_failed session=1 client=127.0.0.1 uid=0 login=nobody"),
            std::string::npos);
}

TEST_F(smtp_auth, hostile_auth_dialogues_get_their_replies_and_the_session_goes_on) {
  start();
  auto client = std::make_unique<smtp_client>(relay_->port());
  ASSERT_EQ(client->read_reply().code, 220);
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", scanner_password)).str(),
            "503 5.5.1 Send EHLO first");
  ASSERT_EQ(client->command("EHLO client.test").code, 250);
  EXPECT_EQ(client->command("AUTH PLAIN AGZvb!BiYXI=").str(), "501 5.5.2 Cannot decode response");
  EXPECT_EQ(client->command("AUTH LOGIN").str(), "334 VXNlcm5hbWU6");
  EXPECT_EQ(client->command("*").str(), "501 5.0.0 Authentication cancelled");
  EXPECT_EQ(client->command("AUTH PLAIN").code, 334);
  EXPECT_EQ(client->command(std::string(3000, 'A')).str(),
            "500 5.5.6 Authentication exchange line is too long");
  EXPECT_EQ(client->command("AUTH PLAIN " + std::string(2000, 'A')).str(),
            "500 5.5.2 Line too long");
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", std::string(300, 'x'))).str(),
            "501 5.5.4 Credentials too long");
  EXPECT_EQ(client->command("AUTH CRAM-MD5").str(), "504 5.5.4 Unrecognized authentication type");
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", scanner_password)).code, 235);
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", scanner_password)).str(),
            "503 5.5.1 Already authenticated");
  EXPECT_EQ(client->command("MAIL FROM:<shop@example.com>").code, 250);
  EXPECT_EQ(client->command("QUIT").code, 221);
}

TEST_F(smtp_auth, require_login_refuses_mail_before_auth) {
  start("  require_login: true\n");
  auto client = greeted();
  EXPECT_EQ(client->command("MAIL FROM:<open@example.com>").str(),
            "530 5.7.0 Authentication required");
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("nas", nas_password)).code, 235);
  EXPECT_EQ(client->command("MAIL FROM:<open@example.com>").code, 250);
}

TEST_F(smtp_auth, swaks_starttls_then_auth) {
  start();
  for (const std::string mechanism : {"PLAIN", "LOGIN"}) {
    SCOPED_TRACE(mechanism);
    const auto r =
        run_command({"swaks", "--server", "127.0.0.1:" + port(), "--helo", "swaks.test", "--from",
                     "shop@example.com", "--to", "r@example.org", "--tls", "--auth", mechanism,
                     "--auth-user", "scanner", "--auth-password", scanner_password});
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("<-  220 2.0.0 Ready to start TLS"), std::string::npos);
    EXPECT_NE(r.out.find("<~  235 2.7.0 Authentication successful"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("<~  250 2.0.0 Ok: queued as "), std::string::npos);
  }
  EXPECT_NE(relay_->log().find("event=tls_started"), std::string::npos);
}

TEST_F(smtp_auth, python_smtplib_verifies_the_certificate_then_logs_in) {
  start();
  const auto r = run_command(
      {"python3", source_dir() + "/tests/integration/scripts/smtplib_starttls_auth.py", "127.0.0.1",
       port(), path("ca.pem"), "scanner", scanner_password, "shop@example.com", "r@example.org"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("before-tls auth offered: True"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("starttls: 220 2.0.0 Ready to start TLS"), std::string::npos);
  EXPECT_NE(r.out.find("tls version: TLSv1.3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("after-tls auth: PLAIN LOGIN"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("login: 235 2.7.0 Authentication successful"), std::string::npos);
  EXPECT_NE(r.out.find("refused: {}"), std::string::npos);
}

TEST_F(smtp_auth, commands_pipelined_behind_starttls_are_dropped) {
  start();
  for (const std::string injected : {"RSET", "MAIL FROM:<shop@example.com>"}) {
    SCOPED_TRACE(injected);
    const auto r =
        run_command({"python3", source_dir() + "/tests/integration/scripts/starttls_pipelining.py",
                     "127.0.0.1", port(), injected});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("starttls: ['220 2.0.0 Ready to start TLS']"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("clear-text after 220: b''"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("noop: ['250 2.0.0 Ok']"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("tls after noop: b''"), std::string::npos) << r.out;
  }
  EXPECT_TRUE(relay_->wait_for_log(" dropped=6\n"));
  EXPECT_TRUE(relay_->wait_for_log(" dropped=30\n"));
}

TEST_F(smtp_auth, no_credential_reaches_the_debug_log) {
  start();
  {
    auto client = greeted();
    EXPECT_EQ(client->command("AUTH PLAIN " + plain("scanner", scanner_password)).code, 235);
  }
  {
    auto client = greeted();
    EXPECT_EQ(client->command("AUTH LOGIN").code, 334);
    EXPECT_EQ(client->command(base64_encode("nas")).code, 334);
    EXPECT_EQ(client->command(base64_encode("not the nas password")).code, 535);
  }
  const auto r =
      run_command({"swaks", "--server", "127.0.0.1:" + port(), "--from", "shop@example.com", "--to",
                   "r@example.org", "--tls", "--auth", "PLAIN", "--auth-user", "scanner",
                   "--auth-password", scanner_password});
  ASSERT_EQ(r.status, 0) << r.out;
  ASSERT_TRUE(relay_->wait_for_log("event=login_failed"));
  const auto log = relay_->log();
  EXPECT_NE(log.find("<7>event=session_start"), std::string::npos);  // debug lines are there
  for (const std::string& secret_text :
       {std::string(scanner_password), plain("scanner", scanner_password),
        std::string(nas_password), std::string("not the nas password"),
        base64_encode("not the nas password"), std::string("AUTH"), std::string("AHNjYW5u")}) {
    EXPECT_EQ(log.find(secret_text), std::string::npos) << secret_text << "\n" << log;
  }
}

TEST_F(smtp_auth, sighup_reloads_the_certificate_and_the_logins) {
  const auto subject = [this] {
    return run_command({"openssl", "s_client", "-starttls", "smtp", "-connect",
                        "127.0.0.1:" + port(), "-brief"},
                       "")
        .err;
  };
  start();
  EXPECT_NE(subject().find("CN = relay.test"), std::string::npos);
  const auto second = pki_.issue({"second.test"}, {"127.0.0.1"});
  write("cert.pem", second.certificate);
  write("key.pem", second.private_key);
  write_logins("later:" + *relay::hash_password(secret("later-pw")) + "\n", 0640);
  relay_->signal(SIGHUP);
  ASSERT_TRUE(relay_->wait_for_log("event=config_reloaded"));
  EXPECT_NE(subject().find("CN = second.test"), std::string::npos);
  auto client = greeted();
  EXPECT_EQ(client->command("AUTH PLAIN " + plain("later", "later-pw")).code, 235);

  // A key that is not the certificate's, and a logins file others may read:
  // both keep what runs and say why.
  write("key.pem", pki_.issue({"third.test"}, {}).private_key);
  write_logins("third:" + *relay::hash_password(secret("pw")) + "\n", 0644);
  relay_->signal(SIGHUP);
  ASSERT_TRUE(relay_->wait_for_log("event=logins_reload_failed action="));
  const auto log = relay_->log();
  EXPECT_NE(log.find("event=tls_reload_failed error=\"tls.key_file " + path("key.pem") +
                     ": does not match the certificate in tls.cert_file " + path("cert.pem") +
                     "\" action=\"keeping the running certificate\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("other users may read or write it (mode 0644)"), std::string::npos) << log;
  EXPECT_NE(subject().find("CN = second.test"), std::string::npos);
  auto again = greeted();
  EXPECT_EQ(again->command("AUTH PLAIN " + plain("later", "later-pw")).code, 235);
}

TEST_F(smtp_auth, a_bad_key_stops_the_start_with_the_file_and_the_reason) {
  write("key.pem", pki_.issue({"other.test"}, {}).private_key);
  relay_process relay(body());
  EXPECT_THROW(relay.start(), std::runtime_error);
  EXPECT_NE(relay.log().find("event=startup_failed error=\"tls.key_file " + path("key.pem") +
                             ": does not match the certificate in tls.cert_file " +
                             path("cert.pem") + "\""),
            std::string::npos)
      << relay.log();
}

TEST_F(smtp_auth, check_config_names_bad_files_and_warns_about_exposed_listeners) {
  // Every local name mapped: no warning about mail for root.
  const std::string aliases = "aliases:\n  \"*\": [admin@example.org]\n";
  relay_process relay(aliases + body());
  const auto check = [&] {
    return run_command({relayd_path(), "-c", relay.config_path().string(), "--check-config"});
  };
  auto ok = check();
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.err, "");

  write_logins("scanner:$1$abc$def\n", 0644);
  auto bad = check();
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.err, path("logins") +
                         ": other users may read or write it (mode 0644): the hashes would be "
                         "open to guessing; run chmod o-rwx " +
                         path("logins") + "\n");

  ::chmod(path("logins").c_str(), 0600);
  write("cert.pem", "not PEM\n");
  bad = check();
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.err, "tls.cert_file " + path("cert.pem") + ": no PEM certificate in it\n" +
                         path("logins") +
                         ":1: login scanner: the hash is not yescrypt ($y$) or SHA-512-crypt "
                         "($6$); oauth-relayctl login add scanner makes a new one\n");

  relay_process exposed(aliases +
                            "hostname: relay.test\noauth:\n  client_id: i\n  client_secret: s\n"
                            "accounts:\n  - address: a@example.com\n",
                        "[\"127.0.0.1:25\", \"0.0.0.0:2525\"]");
  const auto warned =
      run_command({relayd_path(), "-c", exposed.config_path().string(), "--check-config"});
  EXPECT_EQ(warned.status, 0);
  EXPECT_EQ(warned.out, exposed.config_path().string() + ": ok\n");
  EXPECT_EQ(warned.err, exposed.config_path().string() +
                            ": warning: listen \"0.0.0.0:2525\" is reachable from other hosts, "
                            "with neither tls nor clients.require_login: every client "
                            "clients.allow lets in may send as each account without a permit, "
                            "and no login could be offered to it safely\n");
}

TEST_F(smtp_auth, relayctl_login_adds_lists_and_removes) {
  relay_process relay(body());
  ::unlink(path("logins").c_str());
  const auto ctl = [&](std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {relayctl_path(), "-c", relay.config_path().string()});
    return run_command(args, input);
  };
  // A new file: the config file's group, 0640.
  ::chown(relay.config_path().c_str(), 0, 1);  // group "daemon" stands in for oauth-relay
  auto added = ctl({"login", "add", "scanner", "--password-stdin"}, "first-pw\n");
  ASSERT_EQ(added.status, 0) << added.err;
  EXPECT_EQ(added.out, "login scanner added to " + path("logins") +
                           "\noauth-relayd uses it after: systemctl reload oauth-relay\n");
  struct stat st {};
  ASSERT_EQ(::stat(path("logins").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_gid, 1u);
  // Another entry, a comment of the administrator's, a new password: every other line stays.
  { std::ofstream(path("logins"), std::ios::app) << "# the printer in room 2\n"; }
  ::chmod(path("logins").c_str(), 0600);
  ASSERT_EQ(ctl({"login", "add", "printer", "--password-stdin"}, "printer-pw\n").status, 0);
  ASSERT_EQ(ctl({"login", "add", "scanner", "--password-stdin"}, "second-pw\r\n").status, 0);
  ASSERT_EQ(::stat(path("logins").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  const auto loaded = relay::login_table::load(path("logins"));
  ASSERT_TRUE(loaded.table) << loaded.errors.front();
  EXPECT_TRUE(loaded.table->verify("scanner", secret("second-pw")));
  EXPECT_FALSE(loaded.table->verify("scanner", secret("first-pw")));
  EXPECT_TRUE(loaded.table->verify("printer", secret("printer-pw")));
  std::ifstream in(path("logins"));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\n# the printer in room 2\nprinter:$y$"), std::string::npos) << text;

  const auto listed = ctl({"login", "list"});
  EXPECT_EQ(listed.status, 0);
  EXPECT_EQ(listed.out,
            "LOGIN    HASH      PERMITTED FOR\n"
            "scanner  yescrypt  shop@example.com\n"
            "printer  yescrypt  -\n"
            "without a permit (any client may send as them): open@example.com\n");

  EXPECT_EQ(ctl({"login", "remove", "scanner"}).status, 0);
  const auto missing = ctl({"login", "remove", "scanner"});
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.err, "error: there is no login scanner in " + path("logins") +
                             "\nhint: oauth-relayctl login list shows the logins\n");
  const auto empty = ctl({"login", "add", "x", "--password-stdin"}, "\n");
  EXPECT_EQ(empty.status, 1);
  EXPECT_EQ(empty.err, "error: the password is empty\nhint: give one\n");
  const auto no_tty = ctl({"login", "add", "x"});
  EXPECT_EQ(no_tty.status, 1);
  EXPECT_EQ(no_tty.err,
            "error: standard input is not a terminal to ask the password on\nhint: give it on "
            "standard input with --password-stdin\n");
}

}  // namespace
}  // namespace oauth_relay::test_support
