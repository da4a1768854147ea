// The real oauth-relayctl authorize against the in-repo Google stand-in over
// HTTPS: a "browser" (libcurl) fetches the consent URL the tool printed,
// takes the fake's 302 and follows it to the tool's loopback listener, or
// pastes it into the tool's standard input. Exact lines, exit statuses, and
// what the token store holds afterwards.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "auth/consent.hpp"
#include "auth/token_store.hpp"
#include "common/clock.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/ctl_process.hpp"
#include "integration/support/fake_daemon_socket.hpp"
#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;
using fakes::fake_oauth;

constexpr const char* alice = "alice@example.com";
constexpr const char* not_running =
    "oauth-relayd is not running; it will use the token when it starts (systemctl start "
    "oauth-relay)";

std::string query_value(const std::string& url, const std::string& name) {
  const auto at = url.find("&" + name + "=") != std::string::npos ? url.find("&" + name + "=") + 1
                                                                  : url.find("?" + name + "=") + 1;
  const auto start = at + name.size() + 1;
  return auth::percent_decode(url.substr(start, url.find('&', start) - start));
}

class ctl_authorize : public testing::Test {
 protected:
  void SetUp() override {
    ca_file_ = pki_.write_ca(dir_.path() / "ca.pem");
    // As the package's tmpfiles.d makes it: oauth-relayctl run as root does
    // not create it.
    std::filesystem::create_directories(state_dir_);
    oauth_.set_consenting_account(alice);
    write_config(fake_oauth::default_client_secret);
  }

  void TearDown() override {
    if (HasFailure() && process_) {
      std::cerr << "---- oauth-relayctl stdout\n"
                << process_->out() << "---- stderr\n"
                << process_->err();
    }
  }

  void write_config(const std::string& client_secret) {
    std::ofstream(config_) << "listen: [\"127.0.0.1:0\"]\n"
                           << "hostname: relay.test\n"
                           << "state_dir: " << state_dir_.string() << "\n"
                           << "health_socket: " << socket_.string() << "\n"
                           << secrets_config(key_file_) << "oauth:\n"
                           << "  client_id: \"" << fake_oauth::default_client_id << "\"\n"
                           << "  client_secret: \"" << client_secret << "\"\n"
                           << "  auth_url: " << oauth_.auth_url() << "\n"
                           << "  token_url: " << oauth_.token_url() << "\n"
                           << "  ca_file: " << ca_file_.string() << "\n"
                           << "accounts:\n"
                           << "  - address: alice@example.com\n"
                           << "    default: true\n"
                           << "  - address: bob@example.com\n";
  }

  // Starts authorize and returns the consent URL it printed on its own line.
  std::string start(std::vector<std::string> extra = {"--no-browser"},
                    std::map<std::string, std::string> environment = {}) {
    std::vector<std::string> args = {"-c", config_.string(), "authorize", alice};
    args.insert(args.end(), extra.begin(), extra.end());
    process_ = std::make_unique<ctl_process>(args, std::move(environment));
    auto line = process_->wait_for_line(
        [](const std::string& l) { return l.rfind("https://", 0) == 0; }, 20s);
    if (!line) throw std::runtime_error("no consent URL printed:\n" + process_->err());
    return *line;
  }

  // The browser's first step: the consent screen answers with a redirect.
  std::string consent(const std::string& url) {
    const auto r = http_get(url, ca_file_);
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.status, 302) << r.body;
    return r.location;
  }

  std::optional<auth::account_record> stored(const std::string& address) {
    auth::token_store store(state_dir_, token_key(key_file_));
    return store.get(address);
  }

  temp_dir dir_;
  fakes::test_pki pki_;
  fake_oauth oauth_{pki_};
  std::filesystem::path ca_file_;
  std::filesystem::path config_ = dir_.path() / "config.yaml";
  std::filesystem::path state_dir_ = dir_.path() / "state";
  std::filesystem::path socket_ = dir_.path() / "health.sock";
  std::filesystem::path key_file_ = write_token_key(dir_.path());
  std::unique_ptr<ctl_process> process_;
};

TEST_F(ctl_authorize, consent_in_the_browser_stores_the_refresh_token) {
  const std::string url = start();
  const std::string redirect = consent(url);

  // What the consent screen was asked for.
  const auto asked = oauth_.last_auth_request();
  const std::string redirect_uri = asked.at("redirect_uri");
  ASSERT_EQ(redirect_uri.rfind("http://127.0.0.1:", 0), 0u) << redirect_uri;
  EXPECT_EQ(redirect_uri.back(), '/');
  EXPECT_EQ(asked.at("client_id"), fake_oauth::default_client_id);
  EXPECT_EQ(asked.at("response_type"), "code");
  EXPECT_EQ(asked.at("scope"), "https://mail.google.com/ openid email");
  EXPECT_EQ(asked.at("access_type"), "offline");
  EXPECT_EQ(asked.at("prompt"), "consent");
  EXPECT_EQ(asked.at("login_hint"), alice);
  EXPECT_EQ(asked.at("code_challenge_method"), "S256");
  EXPECT_EQ(asked.at("code_challenge").size(), 43u);
  EXPECT_EQ(asked.at("state").size(), 22u);
  ASSERT_EQ(redirect.rfind(redirect_uri + "?", 0), 0u) << redirect;

  // The browser follows the redirect to the tool's listener.
  const auto page = http_get(redirect);
  EXPECT_EQ(page.status, 200);
  EXPECT_NE(page.body.find("<h1>alice@example.com is authorized</h1>"), std::string::npos)
      << page.body;
  EXPECT_NE(page.body.find("You can close this window."), std::string::npos);

  ASSERT_EQ(process_->wait(), 0);
  EXPECT_EQ(process_->out_lines(),
            (std::vector<std::string>{url, "authorized alice@example.com: refresh token stored",
                                      not_running}));

  // The exchange: PKCE verifier, same redirect_uri.
  const auto exchanged = oauth_.last_token_request();
  EXPECT_EQ(exchanged.at("grant_type"), "authorization_code");
  EXPECT_EQ(exchanged.at("redirect_uri"), redirect_uri);
  EXPECT_EQ(auth::s256_challenge(exchanged.at("code_verifier")), asked.at("code_challenge"));
  EXPECT_EQ(oauth_.codes_exchanged(), 1u);

  const auto row = stored(alice);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->refresh_token, oauth_.refresh_token_of(alice).value());
  // The exchange's access token is kept: `accounts` reads valid at once.
  EXPECT_EQ(row->state, auth::token_state::valid);
  EXPECT_TRUE(oauth_.token_valid(alice, row->access_token));
  EXPECT_GE(row->access_expires_at, now_seconds() + 3590);
  EXPECT_LE(row->access_expires_at, now_seconds() + 3599);
  EXPECT_EQ(oauth_.refreshes_served(), 0u);

  // No secret on any output.
  for (const std::string& secret : {std::string(row->refresh_token), std::string(row->access_token),
                                    std::string(fake_oauth::default_client_secret),
                                    exchanged.at("code_verifier"), exchanged.at("code")}) {
    EXPECT_EQ(process_->out().find(secret), std::string::npos) << secret;
    EXPECT_EQ(process_->err().find(secret), std::string::npos) << secret;
  }
  EXPECT_EQ(process_->err_lines().at(0),
            "Open this URL in a browser and sign in to Google as alice@example.com:");
}

TEST_F(ctl_authorize, a_redirect_with_another_state_is_refused_and_the_wait_goes_on) {
  const std::string url = start();
  const auto at = url.find("&state=");
  ASSERT_NE(at, std::string::npos);
  const std::string forged = url.substr(0, at) + "&state=forged-by-someone";
  const auto page = http_get(consent(forged));
  EXPECT_EQ(page.status, 400);
  EXPECT_NE(page.body.find("This answer belongs to another oauth-relayctl authorize request"),
            std::string::npos)
      << page.body;
  const std::string ignored =
      "An answer to another authorization request (its state does not match) was ignored; still "
      "waiting for the answer to the URL printed last.";
  ASSERT_TRUE(process_->wait_for_stderr(ignored, 10s));
  // Pasted, the same.
  process_->write_stdin(consent(forged) + "\n");
  ASSERT_TRUE(process_->wait_for_stderr(ignored + "\n" + ignored, 10s));
  EXPECT_EQ(process_->wait(100ms), -1);    // still waiting
  EXPECT_EQ(oauth_.token_requests(), 0u);  // no forged code was exchanged
  EXPECT_FALSE(stored(alice));

  // The right answer still works.
  EXPECT_EQ(http_get(consent(url)).status, 200);
  ASSERT_EQ(process_->wait(), 0);
  EXPECT_EQ(oauth_.codes_exchanged(), 1u);
  EXPECT_TRUE(stored(alice));
}

TEST_F(ctl_authorize, connections_beyond_the_cap_push_out_the_oldest) {
  const std::string url = start();
  const std::string redirect_uri = query_value(url, "redirect_uri");
  const auto port = static_cast<std::uint16_t>(std::stoi(redirect_uri.substr(17)));
  // 40 idle connections (far past the cap of 16): the listener keeps working.
  std::vector<int> idle;
  for (int i = 0; i < 40; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    idle.push_back(fd);
  }
  EXPECT_EQ(http_get(redirect_uri + "favicon.ico").status, 404);
  // The first ones were closed by the tool: reading gives end of file.
  char byte = 0;
  timeval limit{10, 0};
  ::setsockopt(idle[0], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  EXPECT_EQ(::read(idle[0], &byte, 1), 0);
  for (int fd : idle) ::close(fd);
  EXPECT_EQ(http_get(consent(url)).status, 200);
  EXPECT_EQ(process_->wait(), 0);
}

TEST_F(ctl_authorize, consent_by_another_account_stores_nothing) {
  oauth_.set_consenting_account("bob@example.com");
  const auto page = http_get(consent(start()));
  EXPECT_EQ(page.status, 400);
  EXPECT_NE(page.body.find("the consent was given by bob@example.com, not alice@example.com"),
            std::string::npos)
      << page.body;
  ASSERT_EQ(process_->wait(), 1);
  const auto err = process_->err_lines();
  ASSERT_GE(err.size(), 2u);
  EXPECT_EQ(err.end()[-2],
            "error: the consent was given by bob@example.com, not alice@example.com; nothing was "
            "stored");
  EXPECT_EQ(err.back(),
            "hint: sign in to Google as alice@example.com (pick it in the account chooser, or use "
            "a private window), then run: oauth-relayctl authorize alice@example.com");
  EXPECT_FALSE(stored(alice));
  EXPECT_FALSE(stored("bob@example.com"));
}

TEST_F(ctl_authorize, access_denied_is_explained) {
  oauth_.deny_consent(true);
  const auto page = http_get(consent(start()));
  EXPECT_EQ(page.status, 400);
  EXPECT_NE(page.body.find("<h1>Authorization failed: nothing was stored</h1>"), std::string::npos);
  EXPECT_NE(page.body.find("Test users"), std::string::npos) << page.body;
  ASSERT_EQ(process_->wait(), 1);
  const auto err = process_->err_lines();
  EXPECT_EQ(err.end()[-2],
            "error: the consent was refused (access_denied): alice@example.com is not a test user "
            "of the OAuth consent screen, or Cancel was clicked");
  EXPECT_EQ(err.back(),
            "hint: add alice@example.com under Google Auth Platform > Audience > Test users (or "
            "publish the app), then run oauth-relayctl authorize alice@example.com and click "
            "Continue");
  EXPECT_FALSE(stored(alice));
}

TEST_F(ctl_authorize, unticked_gmail_permission_stores_nothing) {
  oauth_.grant_only("openid email");
  const auto page = http_get(consent(start()));
  EXPECT_EQ(page.status, 400);
  ASSERT_EQ(process_->wait(), 1);
  EXPECT_EQ(process_->err_lines().end()[-2],
            "error: alice@example.com did not grant access to Gmail (the consent lacks "
            "https://mail.google.com/); nothing was stored");
  EXPECT_FALSE(stored(alice));
}

TEST_F(ctl_authorize, wrong_client_secret_fails_at_the_exchange) {
  write_config("not-the-secret");
  const auto page = http_get(consent(start()));
  EXPECT_EQ(page.status, 400);
  ASSERT_EQ(process_->wait(), 1);
  EXPECT_EQ(process_->err_lines().end()[-2],
            "error: Google does not know this OAuth client (invalid_client): oauth.client_id or "
            "the client secret is wrong, or the client was deleted");
  EXPECT_FALSE(stored(alice));
}

TEST_F(ctl_authorize, the_pasted_redirect_url_works_without_a_listener_hit) {
  const std::string url = start();
  const std::string redirect = consent(url);
  process_->write_stdin("this is not it\n");
  ASSERT_TRUE(process_->wait_for_stderr(
      "That is not the address Google redirected to (it has no code= or error=); paste the whole "
      "address from the browser's address bar.",
      10s));
  process_->write_stdin("  " + redirect + "  \n");
  ASSERT_EQ(process_->wait(), 0);
  EXPECT_EQ(process_->out_lines(),
            (std::vector<std::string>{url, "authorized alice@example.com: refresh token stored",
                                      not_running}));
  ASSERT_TRUE(stored(alice));
  EXPECT_EQ(stored(alice)->refresh_token, oauth_.refresh_token_of(alice).value());
}

TEST_F(ctl_authorize, other_requests_to_the_listener_do_not_end_the_wait) {
  const std::string url = start();
  const std::string redirect_uri = query_value(url, "redirect_uri");
  auto favicon = http_get(redirect_uri + "favicon.ico");
  EXPECT_EQ(favicon.status, 404);
  auto bare = http_get(redirect_uri);
  EXPECT_EQ(bare.status, 404);
  EXPECT_EQ(process_->wait(100ms), -1);  // still waiting
  EXPECT_EQ(http_get(consent(url)).status, 200);
  EXPECT_EQ(process_->wait(), 0);
}

// With the daemon running, the token goes to it over the control socket and
// oauth-relayctl opens nothing in the state directory itself.
TEST_F(ctl_authorize, a_running_daemon_stores_the_token_itself) {
  fake_daemon_socket daemon(dir_.path() / "control.sock");
  daemon.answer("POST", "/accounts/import", 200, R"({"stored":true,"configured":true})");
  const std::string url = start();
  EXPECT_EQ(http_get(consent(url)).status, 200);
  ASSERT_EQ(process_->wait(), 0);
  EXPECT_EQ(process_->out_lines().back(),
            "oauth-relayd stored the token and reloaded the account; mail waiting for "
            "alice@example.com goes out now");
  const auto requests = daemon.requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].target, "/accounts/import");
  EXPECT_EQ(requests[0].content_type, "application/json");
  const auto body = nlohmann::json::parse(requests[0].body);
  EXPECT_EQ(body.size(), 4u) << body.dump();
  EXPECT_EQ(body["address"], alice);
  EXPECT_EQ(body["refresh_token"], oauth_.refresh_token_of(alice).value());
  EXPECT_TRUE(oauth_.token_valid(alice, body["access_token"].get<std::string>()));
  EXPECT_GE(body["access_expires_at"].get<std::int64_t>(), now_seconds() + 3590);
  EXPECT_TRUE(std::filesystem::is_empty(state_dir_));
}

// Right after the consent (and right after an import) with the real daemon
// running, `accounts` says valid: the token the exchange or the check
// returned went in with the refresh token, and no refresh was needed.
TEST_F(ctl_authorize, right_after_authorize_or_import_the_running_daemon_reads_valid) {
  relay_process relay("oauth:\n  client_id: \"" + std::string(fake_oauth::default_client_id) +
                      "\"\n  client_secret: \"" + fake_oauth::default_client_secret +
                      "\"\n  auth_url: " + oauth_.auth_url() +
                      "\n  token_url: " + oauth_.token_url() + "\n  ca_file: " + ca_file_.string() +
                      "\naccounts:\n  - address: alice@example.com\n    default: true\n"
                      "  - address: bob@example.com\n");
  relay.start();
  process_ = std::make_unique<ctl_process>(std::vector<std::string>{
      "-c", relay.config_path().string(), "authorize", alice, "--no-browser"});
  const auto url = process_->wait_for_line(
      [](const std::string& l) { return l.rfind("https://", 0) == 0; }, 20s);
  ASSERT_TRUE(url) << process_->err();
  EXPECT_EQ(http_get(consent(*url)).status, 200);
  ASSERT_EQ(process_->wait(), 0) << process_->err();
  EXPECT_EQ(process_->out_lines().back(),
            "oauth-relayd stored the token and reloaded the account; mail waiting for "
            "alice@example.com goes out now");

  oauth_.add_account("bob@example.com", "1//bob-refresh");
  const auto imported = run_ctl({"-c", relay.config_path().string(), "import", "bob@example.com",
                                 "--refresh-token-file", "-"},
                                "1//bob-refresh");
  ASSERT_EQ(imported.status, 0) << imported.err;

  const auto listing = run_ctl({"-c", relay.config_path().string(), "accounts", "--json"});
  ASSERT_EQ(listing.status, 0) << listing.err;
  const auto accounts = nlohmann::json::parse(listing.out)["accounts"];
  ASSERT_EQ(accounts.size(), 2u) << listing.out;
  for (const auto& a : accounts) {
    EXPECT_EQ(a["token_state"], "valid") << a.dump();
    EXPECT_GT(a["access_expires_in_seconds"].get<int>(), 3500) << a.dump();
  }
  // The daemon took the tokens it was handed: not one refresh so far.
  EXPECT_EQ(oauth_.refreshes_served(), 1u);  // import's own check
  EXPECT_EQ(relay.log().find("event=token_refreshed"), std::string::npos) << relay.log();
}

TEST_F(ctl_authorize, no_browser_is_honoured_and_a_display_opens_one) {
  // A stand-in xdg-open that records the URL it was given.
  const auto bin = dir_.path() / "bin";
  std::filesystem::create_directories(bin);
  const auto marker = dir_.path() / "xdg-open-called";
  {
    std::ofstream script(bin / "xdg-open");
    script << "#!/bin/sh\nprintf '%s\\n' \"$1\" > " << marker.string() << ".tmp && mv "
           << marker.string() << ".tmp " << marker.string() << "\n";
  }
  std::filesystem::permissions(bin / "xdg-open", std::filesystem::perms::owner_all);
  const std::string path = bin.string() + ":" + std::getenv("PATH");

  std::string url = start({"--no-browser"}, {{"DISPLAY", ":99"}, {"PATH", path}});
  process_->write_stdin(consent(url) + "\n");
  ASSERT_EQ(process_->wait(), 0);
  EXPECT_FALSE(std::filesystem::exists(marker));

  url = start({}, {{"DISPLAY", ":99"}, {"PATH", path}});
  if (::geteuid() == 0) {
    // As root no browser is started (it would run as root): the URL is all.
    ASSERT_TRUE(process_->wait_for_stderr(
        "Not starting a browser as root; open the URL above yourself.", 10s));
    process_->write_stdin(consent(url) + "\n");
    EXPECT_EQ(process_->wait(), 0);
    EXPECT_FALSE(std::filesystem::exists(marker));
    return;
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!std::filesystem::exists(marker) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(std::filesystem::exists(marker));
  std::string opened;
  std::getline(std::ifstream(marker), opened);
  EXPECT_EQ(opened, url);
  process_->write_stdin(consent(url) + "\n");
  EXPECT_EQ(process_->wait(), 0);
}

TEST_F(ctl_authorize, the_port_option_and_a_port_in_use) {
  const auto port = unused_port();
  const std::string url = start({"--no-browser", "--port", std::to_string(port)});
  EXPECT_EQ(query_value(url, "redirect_uri"), "http://127.0.0.1:" + std::to_string(port) + "/");
  // The port is now taken by the first run: a second one cannot listen there.
  const auto second = run_ctl(
      {"-c", config_.string(), "authorize", alice, "--no-browser", "--port", std::to_string(port)});
  EXPECT_EQ(second.status, 1);
  EXPECT_EQ(second.err_lines,
            (std::vector<std::string>{"error: cannot listen on 127.0.0.1:" + std::to_string(port) +
                                          ": Address already in use",
                                      "hint: choose another port with --port N, or leave --port "
                                      "out to use any free port"}));
  EXPECT_EQ(http_get(consent(url)).status, 200);
  EXPECT_EQ(process_->wait(), 0);
}

TEST_F(ctl_authorize, times_out_with_a_clear_message) {
  const std::string url = start({"--no-browser", "--timeout", "1"});
  ASSERT_EQ(process_->wait(), 1);
  const auto err = process_->err_lines();
  EXPECT_EQ(err.end()[-2],
            "error: no answer from Google's consent screen within 1s; nothing was stored");
  EXPECT_EQ(err.back().rfind("hint: run oauth-relayctl authorize alice@example.com again; without "
                             "a browser on this server forward the port (ssh -L ",
                             0),
            0u)
      << err.back();
  EXPECT_FALSE(stored(alice));
}

TEST_F(ctl_authorize, an_address_missing_from_the_config_is_refused) {
  const auto r = run_ctl({"-c", config_.string(), "authorize", "carol@example.com"});
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err_lines,
            (std::vector<std::string>{
                "error: carol@example.com is not an account in " + config_.string(),
                "hint: add it under accounts: in " + config_.string() +
                    " (- address: carol@example.com), reload the daemon (systemctl reload "
                    "oauth-relay) and run this again"}));
}

}  // namespace
}  // namespace oauth_relay::test_support
