// Tests for config loading: exact error text and positions for each kind of
// mistake, every key landing in the struct, defaults, and the value parsers.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// The keys every valid file needs; appended after a case's own lines so the
// positions in its expected errors count from line 1.
constexpr std::string_view required_keys =
    "oauth:\n"
    "  client_id: id\n"
    "  client_secret: s3cr3t-value\n"
    "accounts:\n"
    "  - address: alice@example.com\n";

std::vector<std::string> error_strings(const load_result& r) {
  std::vector<std::string> out;
  for (const error& e : r.errors) out.push_back(e.to_string());
  return out;
}

std::vector<std::uint8_t> ip(const std::string& text) {
  std::array<std::uint8_t, 16> buf{};
  if (inet_pton(AF_INET, text.c_str(), buf.data()) == 1) return {buf.begin(), buf.begin() + 4};
  if (inet_pton(AF_INET6, text.c_str(), buf.data()) == 1) return {buf.begin(), buf.end()};
  ADD_FAILURE() << "bad IP in test: " << text;
  return {};
}

network net(const std::string& cidr) {
  const auto slash = cidr.find('/');
  return network{ip(cidr.substr(0, slash)),
                 static_cast<unsigned>(std::stoul(cidr.substr(slash + 1)))};
}

class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "config_test.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path write(const fs::path& name, std::string_view content) const {
    const fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }

 private:
  fs::path path_;
};

// ---------------------------------------------------------------------------
// One mistake per case, with the exact message and position.

struct error_case {
  const char* name;
  std::string yaml;
  bool append_required;  // add required_keys after `yaml`
  std::vector<std::string> expected;
  friend void PrintTo(const error_case& c, std::ostream* os) { *os << c.name; }
};

class config_errors : public ::testing::TestWithParam<error_case> {};

TEST_P(config_errors, reports_exact_message_and_position) {
  const error_case& c = GetParam();
  const std::string text = c.append_required ? c.yaml + std::string(required_keys) : c.yaml;
  const load_result r = parse(text, "c.yaml");
  EXPECT_EQ(error_strings(r), c.expected);
  EXPECT_FALSE(r.value.has_value());
}

const std::string accounts_head = "oauth:\n  client_id: id\n  client_secret: s\naccounts:\n";

INSTANTIATE_TEST_SUITE_P(
    table, config_errors,
    ::testing::Values(
        error_case{"unknown_top_level_key",
                   "limts:\n  max_recipients: 5\n",
                   true,
                   {R"(c.yaml:1:1: unknown key "limts" (did you mean "limits"?))"}},
        error_case{"unknown_key_without_suggestion",
                   "x: 1\nbogus: 1\n",
                   true,
                   {R"(c.yaml:1:1: unknown key "x")", R"(c.yaml:2:1: unknown key "bogus")"}},
        error_case{
            "unknown_nested_key",
            "limits:\n  max_mesage_size: 10M\n",
            true,
            {R"(c.yaml:2:3: limits: unknown key "max_mesage_size" (did you mean "max_message_size"?))"}},
        error_case{"unknown_nested_key_transposed",
                   "upstream:\n  prot: 465\n",
                   true,
                   {R"(c.yaml:2:3: upstream: unknown key "prot" (did you mean "port"?))"}},
        error_case{"unknown_account_key",
                   accounts_head + "  - adress: a@example.com\n",
                   false,
                   {R"(c.yaml:5:5: accounts[0]: unknown key "adress" (did you mean "address"?))",
                    R"(c.yaml:5:5: accounts[0]: missing required key "address")"}},
        error_case{"duplicate_key",
                   "limits:\n  max_recipients: 5\n  max_recipients: 6\n",
                   true,
                   {R"(c.yaml:3:3: limits: duplicate key "max_recipients")"}},
        error_case{"section_is_a_list",
                   "limits: [1, 2]\n",
                   true,
                   {"c.yaml:1:9: limits: expected a mapping, got a list"}},
        error_case{"scalar_is_a_list",
                   "hostname:\n  - a\n",
                   true,
                   {"c.yaml:2:3: hostname: expected a domain name, got a list"}},
        error_case{"list_is_a_scalar",
                   "listen: 127.0.0.1:25\n",
                   true,
                   {R"(c.yaml:1:9: listen: expected a list, got "127.0.0.1:25")"}},
        error_case{"scalar_is_empty",
                   "hostname:\n",
                   true,
                   {"c.yaml:1:1: hostname: expected a domain name, got nothing"}},
        error_case{"document_is_a_list",
                   "- a\n- b\n",
                   false,
                   {"c.yaml:1:1: expected a mapping of settings, got a list"}},
        error_case{
            "bad_duration",
            "queue:\n  retry_max: soon\n",
            true,
            {R"(c.yaml:2:14: queue.retry_max: expected a duration like 60s, 5m, 1h or 5d, got "soon")"}},
        error_case{
            "zero_duration",
            "limits:\n  command_timeout: 0s\n",
            true,
            {R"(c.yaml:2:20: limits.command_timeout: expected a duration like 60s, 5m, 1h or 5d, got "0s")"}},
        error_case{"retry_max_below_retry_initial",
                   "queue:\n  retry_initial: 2h\n  retry_max: 30m\n",
                   true,
                   {"c.yaml:3:14: queue.retry_max: expected at least queue.retry_initial (7200s), "
                    "got 1800s"}},
        error_case{
            "bad_size",
            "limits:\n  max_message_size: lots\n",
            true,
            {R"(c.yaml:2:21: limits.max_message_size: expected a size like 35M, got "lots")"}},
        error_case{"zero_count",
                   "limits:\n  max_recipients: 0\n",
                   true,
                   {R"(c.yaml:2:19: limits.max_recipients: expected a positive integer, got "0")"}},
        error_case{
            "negative_count",
            "upstream:\n  max_connections: -4\n",
            true,
            {R"(c.yaml:2:20: upstream.max_connections: expected a positive integer, got "-4")"}},
        error_case{"bad_port",
                   "upstream:\n  port: 70000\n",
                   true,
                   {R"(c.yaml:2:9: upstream.port: expected a port number 1-65535, got "70000")"}},
        error_case{
            "listen_host_not_an_ip",
            R"(listen: ["127.0.0.1:25", "localhost:25"])"
            "\n",
            true,
            {R"(c.yaml:1:26: listen[1]: expected "IP:PORT" or "[IPv6]:PORT" with an IP address and a port 0-65535, or "unix:/PATH", got "localhost:25")"}},
        error_case{
            "listen_bad_ports_and_brackets",
            "listen:\n  - 127.0.0.1:-1\n  - \"::1:25\"\n  - \"[::1]:65536\"\n  - 127.0.0.1\n",
            true,
            {R"(c.yaml:2:5: listen[0]: expected "IP:PORT" or "[IPv6]:PORT" with an IP address and a port 0-65535, or "unix:/PATH", got "127.0.0.1:-1")",
             R"(c.yaml:3:5: listen[1]: expected "IP:PORT" or "[IPv6]:PORT" with an IP address and a port 0-65535, or "unix:/PATH", got "::1:25")",
             R"(c.yaml:4:5: listen[2]: expected "IP:PORT" or "[IPv6]:PORT" with an IP address and a port 0-65535, or "unix:/PATH", got "[::1]:65536")",
             R"(c.yaml:5:5: listen[3]: expected "IP:PORT" or "[IPv6]:PORT" with an IP address and a port 0-65535, or "unix:/PATH", got "127.0.0.1")"}},
        error_case{"listen_twice",
                   "listen: [\"[::1]:25\", \"[0::1]:25\"]\n",
                   true,
                   {R"(c.yaml:1:22: listen[1]: "[0::1]:25" is listed twice)"}},
        error_case{"listen_empty",
                   "listen: []\n",
                   true,
                   {"c.yaml:1:9: listen: expected at least one address, got an empty list"}},
        error_case{
            "bad_cidr",
            "clients:\n  allow: [\"10.0.0.0/33\", \"::1/129\", \"10.0.0.0/\", \"host\"]\n",
            true,
            {R"(c.yaml:2:11: clients.allow[0]: expected a network like 127.0.0.0/8 or ::1/128, got "10.0.0.0/33")",
             R"(c.yaml:2:26: clients.allow[1]: expected a network like 127.0.0.0/8 or ::1/128, got "::1/129")",
             R"(c.yaml:2:37: clients.allow[2]: expected a network like 127.0.0.0/8 or ::1/128, got "10.0.0.0/")",
             R"(c.yaml:2:50: clients.allow[3]: expected a network like 127.0.0.0/8 or ::1/128, got "host")"}},
        error_case{"empty_path",
                   "state_dir: \"\"\n",
                   true,
                   {R"(c.yaml:1:12: state_dir: expected a path, got "")"}},
        error_case{"path_is_a_mapping",
                   "health_socket: {a: b}\n",
                   true,
                   {"c.yaml:1:16: health_socket: expected a path, got a mapping"}},
        error_case{"control_socket_is_the_health_socket",
                   "health_socket: /run/r/h.sock\ncontrol_socket: /run/r/h.sock\n",
                   true,
                   {"c.yaml:2:17: control_socket: health_socket and control_socket must differ "
                    "(monitoring must not reach the control socket)"}},
        error_case{"health_socket_named_like_the_default_control_socket",
                   "health_socket: /run/r/control.sock\n",
                   true,
                   {"c.yaml:1:16: health_socket: health_socket and control_socket must differ "
                    "(monitoring must not reach the control socket)"}},
        error_case{"bad_hostname",
                   "hostname: relay_1.example.com\n",
                   true,
                   {R"(c.yaml:1:11: hostname: expected a domain name, got "relay_1.example.com")"}},
        error_case{
            "bad_upstream_host",
            "upstream:\n  host: \"smtp gmail\"\n",
            true,
            {R"(c.yaml:2:9: upstream.host: expected a host name or IP address, got "smtp gmail")"}},
        error_case{"empty_upstream_host",
                   "upstream:\n  host: \"\"\n",
                   true,
                   {R"(c.yaml:2:9: upstream.host: expected a host name or IP address, got "")"}},
        error_case{
            "tls_none",
            "upstream:\n  tls: none\n",
            true,
            {R"(c.yaml:2:8: upstream.tls: "none" is not supported; expected starttls or implicit (nothing unencrypted is supported))"}},
        error_case{
            "tls_plain",
            "upstream:\n  tls: plain\n",
            true,
            {R"(c.yaml:2:8: upstream.tls: "plain" is not supported; expected starttls or implicit (nothing unencrypted is supported))"}},
        error_case{"misspelled_section_after_others",
                   "hostname: relay.example.com\n" + accounts_head +
                       "  - address: a@example.com\n"
                       "oauth2: x\n",
                   false,
                   {R"(c.yaml:7:1: unknown key "oauth2" (did you mean "oauth"?))"}},
        error_case{
            "token_url_not_https",
            "oauth:\n  client_id: id\n  client_secret: s\n"
            "  token_url: http://oauth2.googleapis.com/token\n"
            "accounts:\n  - address: a@example.com\n",
            false,
            {R"(c.yaml:4:14: oauth.token_url: expected an https:// URL, got "http://oauth2.googleapis.com/token")"}},
        error_case{"missing_client_id",
                   "hostname: relay.example.com\n"
                   "oauth:\n  client_secret: s\naccounts:\n  - address: a@example.com\n",
                   false,
                   {R"(c.yaml:2:1: oauth: missing required key "client_id")"}},
        error_case{"empty_client_id",
                   "oauth:\n  client_id: \"\"\n  client_secret: s\naccounts:\n  - address: "
                   "a@example.com\n",
                   false,
                   {R"(c.yaml:2:14: oauth.client_id: expected a non-empty string, got "")"}},
        error_case{
            "missing_secret",
            "oauth:\n  client_id: id\naccounts:\n  - address: a@example.com\n",
            false,
            {R"(c.yaml:1:1: oauth: missing required key "client_secret" or "client_secret_file" (or the systemd credential "client-secret"))"}},
        error_case{
            "both_secrets",
            "oauth:\n  client_id: id\n  client_secret: s3cr3t-value\n"
            "  client_secret_file: /nonexistent/secret\n"
            "accounts:\n  - address: a@example.com\n",
            false,
            {"c.yaml:4:3: oauth: client_secret and client_secret_file are both set; expected "
             "exactly one"}},
        error_case{"secret_is_a_list",
                   "oauth:\n  client_id: id\n  client_secret: [s3cr3t-value]\n"
                   "accounts:\n  - address: a@example.com\n",
                   false,
                   {"c.yaml:3:18: oauth.client_secret: expected a string, got a list"}},
        error_case{"empty_secret",
                   "oauth:\n  client_id: id\n  client_secret: ''\n"
                   "accounts:\n  - address: a@example.com\n",
                   false,
                   {"c.yaml:3:18: oauth.client_secret: expected a non-empty string"}},
        error_case{"bad_email",
                   accounts_head + "  - address: alice@example.com\n  - address: bob@\n",
                   false,
                   {R"(c.yaml:6:14: accounts[1].address: "bob@" is not an email address)"}},
        error_case{
            "bad_emails",
            accounts_head +
                "  - address: bob\n  - address: .bob@example.com\n"
                "  - address: \"bob smith@example.com\"\n  - address: bob@-example.com\n"
                "  - address: bob..x@example.com\n",
            false,
            {R"(c.yaml:5:14: accounts[0].address: "bob" is not an email address)",
             R"(c.yaml:6:14: accounts[1].address: ".bob@example.com" is not an email address)",
             R"(c.yaml:7:14: accounts[2].address: "bob smith@example.com" is not an email address)",
             R"(c.yaml:8:14: accounts[3].address: "bob@-example.com" is not an email address)",
             R"(c.yaml:9:14: accounts[4].address: "bob..x@example.com" is not an email address)"}},
        error_case{
            "bad_sender_pattern",
            accounts_head +
                "  - address: a@example.com\n    senders: [\"a@example.com\", \"example.com\"]\n",
            false,
            {R"(c.yaml:6:32: accounts[0].senders[1]: expected an address or a pattern like *@example.com, got "example.com")"}},
        error_case{"empty_senders_on_non_default",
                   accounts_head + "  - address: a@example.com\n    senders: []\n",
                   false,
                   {"c.yaml:6:14: accounts[0].senders: expected at least one sender pattern (or "
                    "default: true), got an empty list"}},
        error_case{"bad_default",
                   accounts_head + "  - address: a@example.com\n    default: maybe\n",
                   false,
                   {R"(c.yaml:6:14: accounts[0].default: expected true or false, got "maybe")"}},
        error_case{"two_default_accounts",
                   accounts_head + "  - address: a@example.com\n    default: true\n"
                                   "  - address: b@example.com\n    default: true\n",
                   false,
                   {"c.yaml:8:14: accounts[1].default: accounts[0] is already the default; at most "
                    "one account may be default"}},
        error_case{"duplicate_account",
                   accounts_head + "  - address: a@example.com\n  - address: A@Example.com\n",
                   false,
                   {R"(c.yaml:6:14: accounts[1].address: "A@Example.com" is already accounts[0])"}},
        error_case{"account_without_address",
                   accounts_head + "  - address: a@example.com\n  - default: true\n",
                   false,
                   {R"(c.yaml:6:5: accounts[1]: missing required key "address")"}},
        error_case{"account_is_a_string",
                   accounts_head + "  - a@example.com\n",
                   false,
                   {R"(c.yaml:5:5: accounts[0]: expected a mapping, got "a@example.com")"}},
        error_case{"empty_accounts",
                   "oauth:\n  client_id: id\n  client_secret: s\naccounts: []\n",
                   false,
                   {"c.yaml:4:11: accounts: expected at least one account, got an empty list"}},
        error_case{"missing_everything",
                   "",
                   false,
                   // "oauth" is asked for once an account needs it.
                   {R"(c.yaml:1:1: missing required key "accounts")"}},
        error_case{"yaml_syntax_error",
                   "hostname: a: b\n",
                   false,
                   {"c.yaml:1:12: invalid YAML: illegal map value"}},
        error_case{"yaml_unclosed_flow",
                   "listen: [\"127.0.0.1:25\"\nhostname: x\n",
                   false,
                   {"c.yaml:2:1: invalid YAML: end of sequence flow not found"}},
        error_case{"two_documents",
                   std::string(required_keys) + "---\nhostname: x\n",
                   false,
                   {"c.yaml:7:1: expected one YAML document, found 2"}}),
    [](const ::testing::TestParamInfo<error_case>& info) { return std::string(info.param.name); });

TEST(config, multiple_errors_are_all_reported_in_file_order) {
  const std::string text =
      "limits:\n"
      "  max_message_size: lots\n"
      "  max_recipients: many\n"
      "upstream:\n"
      "  tls: none\n"
      "oauth:\n"
      "  client_secret: s\n"
      "accounts:\n"
      "  - address: bob@\n"
      "colour: red\n";
  EXPECT_THAT(
      error_strings(parse(text, "c.yaml")),
      ElementsAre(
          R"(c.yaml:2:21: limits.max_message_size: expected a size like 35M, got "lots")",
          R"(c.yaml:3:19: limits.max_recipients: expected a positive integer, got "many")",
          R"(c.yaml:5:8: upstream.tls: "none" is not supported; expected starttls or implicit (nothing unencrypted is supported))",
          R"(c.yaml:6:1: oauth: missing required key "client_id")",
          R"(c.yaml:9:14: accounts[0].address: "bob@" is not an email address)",
          R"(c.yaml:10:1: unknown key "colour")"));
}

TEST(config, secret_never_appears_in_errors) {
  const std::string secret = "s3cr3t-value";
  const std::vector<std::string> texts = {
      "oauth:\n  client_id: id\n  client_secret: " + secret +
          "\n  client_secret_file: /nonexistent\naccounts: []\n",
      "oauth:\n  client_id: [x]\n  client_secret: " + secret + "\n  extra: 1\naccounts:\n  - x\n",
      "oauth:\n  client_secret: " + secret + "\n  token_url: http://x\nlimits: 1\n",
  };
  for (const std::string& text : texts) {
    const load_result r = parse(text, "c.yaml");
    EXPECT_THAT(r.errors, Not(IsEmpty())) << text;
    for (const error& e : r.errors) EXPECT_THAT(e.to_string(), Not(HasSubstr(secret))) << text;
  }
}

TEST(config, error_without_position_prints_file_only) {
  EXPECT_EQ((error{"c.yaml", 0, 0, "cannot read: x"}).to_string(), "c.yaml: cannot read: x");
  EXPECT_EQ((error{"c.yaml", 3, 7, "bad"}).to_string(), "c.yaml:3:7: bad");
}

// ---------------------------------------------------------------------------
// Valid files.

TEST(config, minimal_file_gets_every_default) {
  const load_result r = parse(std::string(required_keys), "/etc/oauth-relay/config.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  const settings& s = *r.value;
  EXPECT_EQ(s.source, fs::path("/etc/oauth-relay/config.yaml"));
  EXPECT_EQ(s.listen, (std::vector<listen_address>{{"127.0.0.1", 25}, {"::1", 25}}));
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(s.hostname, host);
  EXPECT_EQ(s.state_dir, fs::path("/var/lib/oauth-relay"));
  EXPECT_EQ(s.health_socket, fs::path("/run/oauth-relay/health.sock"));
  EXPECT_EQ(s.control_socket, fs::path("/run/oauth-relay/control.sock"));
  ASSERT_EQ(s.clients_allow.size(), 2u);
  EXPECT_EQ(s.clients_allow[0].address, ip("127.0.0.0"));
  EXPECT_EQ(s.clients_allow[0].prefix_length, 8u);
  EXPECT_EQ(s.clients_allow[1].address, ip("::1"));
  EXPECT_EQ(s.clients_allow[1].prefix_length, 128u);
  EXPECT_EQ(s.limits.max_message_size, 35882577u);
  EXPECT_EQ(s.limits.max_recipients, 100u);
  EXPECT_EQ(s.limits.max_connections, 200u);
  EXPECT_EQ(s.limits.command_timeout, 300s);
  EXPECT_EQ(s.limits.data_timeout, 600s);
  EXPECT_EQ(s.upstream.host, "smtp.gmail.com");
  EXPECT_EQ(s.upstream.port, 587);
  EXPECT_EQ(s.upstream.tls, upstream_tls::starttls);
  EXPECT_EQ(s.upstream.ca_file, std::nullopt);
  EXPECT_EQ(s.upstream.max_connections, 4u);
  EXPECT_EQ(s.upstream.max_messages_per_connection, 100u);
  EXPECT_EQ(s.upstream.outage_alert_after, 5min);
  EXPECT_EQ(s.accounts.at(0).limits, account_limits{});
  EXPECT_EQ(s.queue.retry_initial, 60s);
  EXPECT_EQ(s.queue.retry_max, 1h);
  EXPECT_EQ(s.queue.lifetime, 5 * 24h);
  EXPECT_EQ(s.queue.delay_warning, 0s);
  EXPECT_EQ(s.oauth.client_id, "id");
  EXPECT_EQ(s.oauth.client_secret, "s3cr3t-value");
  EXPECT_EQ(s.oauth.client_secret_file, std::nullopt);
  EXPECT_EQ(s.oauth.auth_url, "https://accounts.google.com/o/oauth2/v2/auth");
  EXPECT_EQ(s.oauth.token_url, "https://oauth2.googleapis.com/token");
  EXPECT_EQ(s.oauth.ca_file, std::nullopt);
  EXPECT_EQ(s.secrets.key_file, fs::path("/etc/oauth-relay/token.key"));
  ASSERT_EQ(s.accounts.size(), 1u);
  EXPECT_EQ(s.accounts[0].address, "alice@example.com");
  EXPECT_EQ(s.accounts[0].senders, std::vector<std::string>{"alice@example.com"});
  EXPECT_FALSE(s.accounts[0].is_default);
  EXPECT_EQ(s.accounts[0].permit, std::nullopt);
  EXPECT_EQ(s.tls, std::nullopt);
  EXPECT_EQ(s.clients_logins_file, std::nullopt);
  EXPECT_FALSE(s.clients_require_login);
}

TEST(config, empty_sections_mean_defaults) {
  const load_result r = parse("limits:\nqueue:\nclients:\n" + std::string(required_keys), "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->limits.max_recipients, 100u);
  EXPECT_EQ(r.value->clients_allow.size(), 2u);
}

TEST(config, full_file_sets_every_key) {
  const temp_dir dir;
  const fs::path secret = dir.write("client_secret", "from-file\n");
  const fs::path upstream_ca = dir.write("upstream-ca.pem", "pem");
  const fs::path oauth_ca = dir.write("oauth-ca.pem", "pem");
  const std::string text =
      "listen: [\"127.0.0.1:2525\", \"[::1]:2526\", \"0.0.0.0:25\"]\n"
      "hostname: relay.example.com\n"
      "state_dir: /srv/relay/state\n"
      "health_socket: /srv/relay/health.sock\n"
      "clients:\n"
      "  allow: [\"10.0.0.1\", \"192.168.0.0/16\", \"::ffff:172.16.0.0/108\", \"2001:db8::/32\"]\n"
      "limits:\n"
      "  max_message_size: 10M\n"
      "  max_recipients: 50\n"
      "  max_connections: 20\n"
      "  command_timeout: 120\n"
      "  data_timeout: 15m\n"
      "upstream:\n"
      "  host: 192.0.2.1\n"
      "  port: 465\n"
      "  tls: implicit\n"
      "  ca_file: " +
      upstream_ca.string() +
      "\n"
      "  max_connections: 2\n"
      "  max_messages_per_connection: 30\n"
      "  outage_alert_after: 90s\n"
      "queue:\n"
      "  retry_initial: 30s\n"
      "  retry_max: 2h\n"
      "  lifetime: 3d\n"
      "  delay_warning: 4h\n"
      "oauth:\n"
      "  client_id: \"1234-abc.apps.googleusercontent.com\"\n"
      "  client_secret_file: " +
      secret.string() +
      "\n"
      "  auth_url: https://auth.example.com/authorize\n"
      "  token_url: https://auth.example.com/token\n"
      "  ca_file: " +
      oauth_ca.string() +
      "\n"
      "accounts:\n"
      "  - address: alice@example.com\n"
      "    senders: [\"alice@example.com\", \"*@billing.example.com\"]\n"
      "    limits:\n"
      "      messages_per_day: 450\n"
      "      recipients_per_day: 900\n"
      "      messages_per_minute: 20\n"
      "  - address: ops@example.com\n"
      "    default: true\n"
      "  - address: bob@example.com\n"
      "    default: false\n"
      "secrets:\n"
      "  key_file: /srv/relay/token.key\n";
  const fs::path file = dir.write("config.yaml", text);
  const load_result r = load(file);
  ASSERT_THAT(error_strings(r), IsEmpty());
  const settings& s = *r.value;
  EXPECT_EQ(s.source, file);
  EXPECT_EQ(s.listen,
            (std::vector<listen_address>{{"127.0.0.1", 2525}, {"::1", 2526}, {"0.0.0.0", 25}}));
  EXPECT_EQ(s.hostname, "relay.example.com");
  EXPECT_EQ(s.state_dir, fs::path("/srv/relay/state"));
  EXPECT_EQ(s.health_socket, fs::path("/srv/relay/health.sock"));
  ASSERT_EQ(s.clients_allow.size(), 4u);
  EXPECT_EQ(s.clients_allow[0].address, ip("10.0.0.1"));
  EXPECT_EQ(s.clients_allow[0].prefix_length, 32u);
  EXPECT_EQ(s.clients_allow[1].address, ip("192.168.0.0"));
  EXPECT_EQ(s.clients_allow[1].prefix_length, 16u);
  // The IPv4-mapped form is stored as the IPv4 network it means.
  EXPECT_EQ(s.clients_allow[2].address, ip("172.16.0.0"));
  EXPECT_EQ(s.clients_allow[2].prefix_length, 12u);
  EXPECT_EQ(s.clients_allow[3].address, ip("2001:db8::"));
  EXPECT_EQ(s.clients_allow[3].prefix_length, 32u);
  EXPECT_EQ(s.limits.max_message_size, 10u * 1024 * 1024);
  EXPECT_EQ(s.limits.max_recipients, 50u);
  EXPECT_EQ(s.limits.max_connections, 20u);
  EXPECT_EQ(s.limits.command_timeout, 120s);
  EXPECT_EQ(s.limits.data_timeout, 15min);
  EXPECT_EQ(s.upstream.host, "192.0.2.1");
  EXPECT_EQ(s.upstream.port, 465);
  EXPECT_EQ(s.upstream.tls, upstream_tls::implicit);
  EXPECT_EQ(s.upstream.ca_file, upstream_ca);
  EXPECT_EQ(s.upstream.max_connections, 2u);
  EXPECT_EQ(s.upstream.max_messages_per_connection, 30u);
  EXPECT_EQ(s.upstream.outage_alert_after, 90s);
  EXPECT_EQ(s.accounts.at(0).limits, (account_limits{450, 900, 20}));
  EXPECT_EQ(s.accounts.at(1).limits, account_limits{});
  EXPECT_EQ(s.queue.retry_initial, 30s);
  EXPECT_EQ(s.queue.retry_max, 2h);
  EXPECT_EQ(s.queue.lifetime, 3 * 24h);
  EXPECT_EQ(s.queue.delay_warning, 4h);
  EXPECT_EQ(s.oauth.client_id, "1234-abc.apps.googleusercontent.com");
  EXPECT_EQ(s.oauth.client_secret, "from-file");
  EXPECT_EQ(s.oauth.client_secret_file, secret);
  EXPECT_EQ(s.oauth.auth_url, "https://auth.example.com/authorize");
  EXPECT_EQ(s.oauth.token_url, "https://auth.example.com/token");
  EXPECT_EQ(s.oauth.ca_file, oauth_ca);
  EXPECT_EQ(s.secrets.key_file, fs::path("/srv/relay/token.key"));
  ASSERT_EQ(s.accounts.size(), 3u);
  EXPECT_EQ(s.accounts[0].address, "alice@example.com");
  EXPECT_EQ(s.accounts[0].senders,
            (std::vector<std::string>{"alice@example.com", "*@billing.example.com"}));
  EXPECT_FALSE(s.accounts[0].is_default);
  EXPECT_EQ(s.accounts[1].address, "ops@example.com");
  EXPECT_THAT(s.accounts[1].senders, IsEmpty());
  EXPECT_TRUE(s.accounts[1].is_default);
  EXPECT_EQ(s.accounts[2].address, "bob@example.com");
  EXPECT_EQ(s.accounts[2].senders, std::vector<std::string>{"bob@example.com"});
  EXPECT_FALSE(s.accounts[2].is_default);
}

TEST(config, account_limits_name_the_key_that_is_wrong) {
  const std::string text =
      "oauth:\n  client_id: id\n  client_secret: s\n"
      "accounts:\n"
      "  - address: alice@example.com\n"
      "    limits:\n"
      "      messages_per_day: 0\n"
      "      recipents_per_day: 5\n";
  EXPECT_THAT(error_strings(parse(text, "c.yaml")),
              ElementsAre("c.yaml:7:25: accounts[0].limits.messages_per_day: expected a positive "
                          "integer, got \"0\"",
                          "c.yaml:8:7: accounts[0].limits: unknown key \"recipents_per_day\" (did "
                          "you mean \"recipients_per_day\"?)"));
}

TEST(config, listen_port_zero_asks_for_a_free_port) {
  const load_result r = parse(
      "listen: [\"127.0.0.1:0\", \"127.0.0.1:0\", \"[::1]:0\"]\n" + std::string(required_keys),
      "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->listen,
            (std::vector<listen_address>{{"127.0.0.1", 0}, {"127.0.0.1", 0}, {"::1", 0}}));
}

TEST(config, upstream_host_accepts_names_and_ip_literals) {
  for (const auto& [written, stored] :
       std::vector<std::pair<std::string, std::string>>{{"smtp.gmail.com", "smtp.gmail.com"},
                                                        {"localhost", "localhost"},
                                                        {"127.0.0.1", "127.0.0.1"},
                                                        {"\"::1\"", "::1"},
                                                        {"\"[::1]\"", "::1"}}) {
    const load_result r =
        parse("upstream:\n  host: " + written + "\n" + std::string(required_keys), "c.yaml");
    ASSERT_THAT(error_strings(r), IsEmpty()) << written;
    EXPECT_EQ(r.value->upstream.host, stored);
  }
}

TEST(config, the_control_socket_goes_beside_the_health_socket_unless_placed) {
  auto r = parse("health_socket: /srv/relay/health.sock\n" + std::string(required_keys), "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->control_socket, fs::path("/srv/relay/control.sock"));
  r = parse("health_socket: /srv/relay/health.sock\ncontrol_socket: /srv/admin/ctl.sock\n" +
                std::string(required_keys),
            "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->control_socket, fs::path("/srv/admin/ctl.sock"));
}

TEST(config, relative_paths_resolve_against_the_config_directory) {
  const temp_dir dir;
  dir.write("secrets/client_secret", "abc\n");
  const fs::path file = dir.write("etc/config.yaml",
                                  "state_dir: ../dev/state\n"
                                  "health_socket: run/health.sock\n"
                                  "secrets: {key_file: token.key}\n"
                                  "oauth:\n"
                                  "  client_id: id\n"
                                  "  client_secret_file: ../secrets/client_secret\n"
                                  "accounts:\n"
                                  "  - address: a@example.com\n");
  // Loaded from elsewhere, to show the working directory does not matter.
  const fs::path old_cwd = fs::current_path();
  fs::current_path("/");
  const load_result r = load(file);
  fs::current_path(old_cwd);
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->state_dir, dir.path() / "dev/state");
  EXPECT_EQ(r.value->health_socket, dir.path() / "etc/run/health.sock");
  EXPECT_EQ(r.value->secrets.key_file, dir.path() / "etc/token.key");
  EXPECT_EQ(r.value->oauth.client_secret_file, dir.path() / "secrets/client_secret");
  EXPECT_EQ(r.value->oauth.client_secret, "abc");
}

TEST(config, repository_dev_config_loads) {
  const fs::path source_dir = fs::path(__FILE__).parent_path().parent_path().parent_path();
  const load_result r = load(source_dir / "config/dev.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->state_dir, (source_dir / "build/dev-state").lexically_normal());
  EXPECT_EQ(r.value->listen, (std::vector<listen_address>{{"127.0.0.1", 2525}}));
}

TEST(config, relative_paths_in_parse_use_the_name_directory) {
  const load_result r =
      parse("state_dir: state\n" + std::string(required_keys), "/etc/oauth-relay/config.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->state_dir, fs::path("/etc/oauth-relay/state"));
}

TEST(config, secret_file_content_is_read_and_trailing_whitespace_trimmed) {
  const temp_dir dir;
  const fs::path secret = dir.write("secret", " a b\t \r\n\n");
  const load_result r = parse("oauth:\n  client_id: id\n  client_secret_file: " + secret.string() +
                                  "\naccounts:\n  - address: a@example.com\n",
                              "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->oauth.client_secret, " a b");
  EXPECT_EQ(r.value->oauth.client_secret_file, secret);
}

TEST(config, unreadable_or_empty_secret_file_is_an_error) {
  const temp_dir dir;
  const fs::path missing = dir.path() / "missing";
  const fs::path blank = dir.write("blank", " \n\n");
  const auto errors_for = [](const fs::path& p) {
    return error_strings(parse("oauth:\n  client_id: id\n  client_secret_file: " + p.string() +
                                   "\naccounts:\n  - address: a@example.com\n",
                               "c.yaml"));
  };
  EXPECT_THAT(errors_for(missing),
              ElementsAre("c.yaml:3:23: oauth.client_secret_file: cannot read " + missing.string() +
                          ": No such file or directory"));
  EXPECT_THAT(
      errors_for(blank),
      ElementsAre("c.yaml:3:23: oauth.client_secret_file: " + blank.string() + " is empty"));
  EXPECT_THAT(errors_for(dir.path()),
              ElementsAre("c.yaml:3:23: oauth.client_secret_file: cannot read " +
                          dir.path().string() + ": Is a directory"));
}

TEST(config, secrets_takes_only_a_key_file_path) {
  const auto errors_for = [](const std::string& secrets) {
    return error_strings(parse(secrets + std::string(required_keys), "c.yaml"));
  };
  EXPECT_THAT(errors_for("secrets:\n  key_file: \"\"\n"),
              ElementsAre("c.yaml:2:13: secrets.key_file: expected a path, got \"\""));
  EXPECT_THAT(errors_for("secrets:\n  keyfile: /k\n"),
              ElementsAre("c.yaml:2:3: secrets: unknown key \"keyfile\" (did you mean "
                          "\"key_file\"?)"));
  // The file is not read when the config is: the first start makes it.
  EXPECT_THAT(errors_for("secrets:\n  key_file: /nonexistent/token.key\n"), IsEmpty());
}

// Sets CREDENTIALS_DIRECTORY as systemd does for a service with credentials.
class with_credentials {
 public:
  explicit with_credentials(const fs::path& dir) {
    ::setenv("CREDENTIALS_DIRECTORY", dir.c_str(), 1);
  }
  ~with_credentials() { ::unsetenv("CREDENTIALS_DIRECTORY"); }
};

TEST(config, the_systemd_credential_gives_the_client_secret_before_the_file) {
  const temp_dir dir;
  dir.write("credentials/client-secret", "from-credential\n");
  const fs::path file_secret = dir.write("client_secret", "from-file\n");
  const with_credentials env(dir.path() / "credentials");
  // Without either key in the file.
  auto r = parse("oauth:\n  client_id: id\naccounts:\n  - address: a@example.com\n", "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->oauth.client_secret, "from-credential");
  // With them, the credential wins; the keys are still checked.
  r = parse("oauth:\n  client_id: id\n  client_secret_file: " + file_secret.string() +
                "\naccounts:\n  - address: a@example.com\n",
            "c.yaml");
  ASSERT_THAT(error_strings(r), IsEmpty());
  EXPECT_EQ(r.value->oauth.client_secret, "from-credential");
  r = parse(
      "oauth:\n  client_id: id\n  client_secret: inline\naccounts:\n  - address: "
      "a@example.com\n",
      "c.yaml");
  EXPECT_EQ(r.value->oauth.client_secret, "from-credential");
  EXPECT_THAT(error_strings(parse("oauth:\n  client_id: id\n  client_secret_file: /nonexistent\n"
                                  "accounts:\n  - address: a@example.com\n",
                                  "c.yaml")),
              ElementsAre("c.yaml:3:23: oauth.client_secret_file: cannot read /nonexistent: No "
                          "such file or directory"));
}

TEST(config, an_empty_credential_is_an_error_without_its_content) {
  const temp_dir dir;
  dir.write("credentials/client-secret", " \n");
  const with_credentials env(dir.path() / "credentials");
  EXPECT_THAT(error_strings(parse(
                  "oauth:\n  client_id: id\naccounts:\n  - address: a@example.com\n", "c.yaml")),
              ElementsAre("c.yaml: oauth: the systemd credential client-secret (" +
                          (dir.path() / "credentials/client-secret").string() + ") is empty"));
}

TEST(config, a_service_without_the_credential_needs_the_keys) {
  const temp_dir dir;
  const with_credentials env(dir.path());  // a credentials directory without client-secret
  EXPECT_THAT(
      error_strings(
          parse("oauth:\n  client_id: id\naccounts:\n  - address: a@example.com\n", "c.yaml")),
      ElementsAre(
          R"(c.yaml:1:1: oauth: missing required key "client_secret" or "client_secret_file" (or the systemd credential "client-secret"))"));
}

TEST(config, unreadable_ca_file_is_an_error) {
  const temp_dir dir;
  const fs::path missing = dir.path() / "ca.pem";
  const load_result r = parse("upstream:\n  ca_file: " + missing.string() +
                                  "\noauth:\n  client_id: id\n  client_secret: s\n"
                                  "  ca_file: " +
                                  missing.string() + "\naccounts:\n  - address: a@example.com\n",
                              "c.yaml");
  EXPECT_THAT(error_strings(r), ElementsAre("c.yaml:2:12: upstream.ca_file: cannot read " +
                                                missing.string() + ": No such file or directory",
                                            "c.yaml:6:12: oauth.ca_file: cannot read " +
                                                missing.string() + ": No such file or directory"));
}

TEST(config, load_of_missing_file_reports_one_error) {
  const temp_dir dir;
  const fs::path file = dir.path() / "nope.yaml";
  const load_result r = load(file);
  EXPECT_THAT(error_strings(r),
              ElementsAre(file.string() + ": cannot read: No such file or directory"));
  EXPECT_FALSE(r.value.has_value());
}

TEST(config, load_reports_errors_under_the_given_name) {
  const temp_dir dir;
  const fs::path file = dir.write("c.yaml", "limts: 1\n" + std::string(required_keys));
  EXPECT_THAT(error_strings(load(file)),
              ElementsAre(file.string() + R"(:1:1: unknown key "limts" (did you mean "limits"?))"));
}

// ---------------------------------------------------------------------------
// network::contains

struct contains_case {
  const char* network;
  const char* address;
  bool expected;
  friend void PrintTo(const contains_case& c, std::ostream* os) {
    *os << c.network << " " << c.address;
  }
};

class network_contains : public ::testing::TestWithParam<contains_case> {};

TEST_P(network_contains, matches) {
  const contains_case& c = GetParam();
  EXPECT_EQ(net(c.network).contains(ip(c.address)), c.expected)
      << c.network << " contains " << c.address;
}

INSTANTIATE_TEST_SUITE_P(
    table, network_contains,
    ::testing::Values(contains_case{"127.0.0.0/8", "127.0.0.1", true},
                      contains_case{"127.0.0.0/8", "127.255.255.255", true},
                      contains_case{"127.0.0.0/8", "128.0.0.1", false},
                      contains_case{"127.0.0.0/8", "126.255.255.255", false},
                      contains_case{"::1/128", "::1", true}, contains_case{"::1/128", "::2", false},
                      contains_case{"2001:db8::/32", "2001:db8:ffff::1", true},
                      contains_case{"2001:db8::/32", "2001:db9::1", false},
                      contains_case{"2001:db8::/33", "2001:db8:7fff::1", true},
                      contains_case{"2001:db8::/33", "2001:db8:8000::1", false},
                      // IPv4-mapped clients (dual-stack sockets) match IPv4 networks.
                      contains_case{"127.0.0.0/8", "::ffff:127.0.0.1", true},
                      contains_case{"10.0.0.0/8", "::ffff:127.0.0.1", false},
                      contains_case{"::ffff:10.0.0.0/104", "10.1.2.3", true},
                      contains_case{"::ffff:10.0.0.0/104", "::ffff:11.1.2.3", false},
                      // ...and only IPv4 networks.
                      contains_case{"::/0", "::ffff:1.2.3.4", false},
                      contains_case{"::/0", "1.2.3.4", false},
                      contains_case{"0.0.0.0/0", "::1", false},
                      // Prefix 0 matches the whole family.
                      contains_case{"0.0.0.0/0", "1.2.3.4", true},
                      contains_case{"0.0.0.0/0", "255.255.255.255", true},
                      contains_case{"::/0", "ffff::1", true},
                      // Edge prefixes.
                      contains_case{"10.0.0.0/32", "10.0.0.0", true},
                      contains_case{"10.0.0.0/32", "10.0.0.1", false},
                      contains_case{"10.0.0.0/31", "10.0.0.1", true},
                      contains_case{"10.0.0.0/31", "10.0.0.2", false},
                      contains_case{"128.0.0.0/1", "255.255.255.255", true},
                      contains_case{"128.0.0.0/1", "127.255.255.255", false},
                      contains_case{"192.168.0.0/23", "192.168.1.255", true},
                      contains_case{"192.168.0.0/23", "192.168.2.0", false},
                      contains_case{"::/127", "::1", true}, contains_case{"::/127", "::2", false},
                      contains_case{"::/1", "7fff::", true}, contains_case{"::/1", "8000::", false},
                      // Host bits in the network are ignored.
                      contains_case{"10.1.2.3/8", "10.200.0.1", true}));

TEST(network_contains_malformed, never_matches) {
  EXPECT_FALSE((network{ip("10.0.0.0"), 33}).contains(ip("10.0.0.0")));
  EXPECT_FALSE((network{{10, 0, 0}, 8}).contains({10, 0, 0}));
  EXPECT_FALSE(net("10.0.0.0/8").contains({10, 0, 0, 0, 0}));
  EXPECT_FALSE(net("10.0.0.0/8").contains({}));
}

// ---------------------------------------------------------------------------
// parse_duration / parse_size

struct duration_case {
  const char* text;
  std::optional<std::chrono::seconds> expected;
  friend void PrintTo(const duration_case& c, std::ostream* os) { *os << '"' << c.text << '"'; }
};

class duration_parsing : public ::testing::TestWithParam<duration_case> {};

TEST_P(duration_parsing, parses) {
  EXPECT_EQ(parse_duration(GetParam().text), GetParam().expected) << '"' << GetParam().text << '"';
}

INSTANTIATE_TEST_SUITE_P(
    table, duration_parsing,
    ::testing::Values(duration_case{"60s", 60s}, duration_case{"5m", 5min}, duration_case{"1h", 1h},
                      duration_case{"5d", 5 * 24h}, duration_case{"90", 90s},
                      duration_case{"1", 1s}, duration_case{"007s", 7s},
                      // The cap: a century.
                      duration_case{"36500d", 36500 * 24h}, duration_case{"36501d", std::nullopt},
                      duration_case{"", std::nullopt}, duration_case{"0", std::nullopt},
                      duration_case{"0s", std::nullopt}, duration_case{"-5s", std::nullopt},
                      duration_case{"+5s", std::nullopt}, duration_case{"s", std::nullopt},
                      duration_case{"5x", std::nullopt}, duration_case{"5S", std::nullopt},
                      duration_case{"5 s", std::nullopt}, duration_case{" 5s", std::nullopt},
                      duration_case{"5s ", std::nullopt}, duration_case{"1.5h", std::nullopt},
                      duration_case{"5ss", std::nullopt}, duration_case{"1h30m", std::nullopt},
                      duration_case{"99999999999999999999", std::nullopt},
                      duration_case{"18446744073709551615s", std::nullopt},
                      duration_case{"3074457345618258603m", std::nullopt}));

struct size_case {
  const char* text;
  std::optional<std::uint64_t> expected;
  friend void PrintTo(const size_case& c, std::ostream* os) { *os << '"' << c.text << '"'; }
};

class size_parsing : public ::testing::TestWithParam<size_case> {};

TEST_P(size_parsing, parses) {
  EXPECT_EQ(parse_size(GetParam().text), GetParam().expected) << '"' << GetParam().text << '"';
}

INSTANTIATE_TEST_SUITE_P(
    table, size_parsing,
    ::testing::Values(size_case{"1", 1}, size_case{"35882577", 35882577},
                      size_case{"512K", 512 * 1024}, size_case{"35M", 35 * 1024 * 1024},
                      size_case{"18446744073709551615", 18446744073709551615ULL},
                      size_case{"18014398509481983K", 18014398509481983ULL * 1024},
                      size_case{"18014398509481984K", std::nullopt},
                      size_case{"18446744073709551616", std::nullopt}, size_case{"", std::nullopt},
                      size_case{"0", std::nullopt}, size_case{"0K", std::nullopt},
                      size_case{"K", std::nullopt}, size_case{"5k", std::nullopt},
                      size_case{"5G", std::nullopt}, size_case{"5MB", std::nullopt},
                      size_case{"-1", std::nullopt}, size_case{"+1", std::nullopt},
                      size_case{"1.5M", std::nullopt}, size_case{" 1", std::nullopt},
                      size_case{"1 M", std::nullopt}));

}  // namespace
}  // namespace oauth_relay::config
