// The daemon's settings: every configuration key (docs/configuration.md) as
// typed values with their defaults, loaded from YAML with positioned errors.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/secret.hpp"
#include "config/service_account_key.hpp"

namespace oauth_relay::config {

// Where SMTP is taken in: an IP literal and port ("127.0.0.1:25", "[::1]:25"),
// or a Unix socket's path ("unix:/run/oauth-relay/smtp.sock").
struct listen_address {
  listen_address() = default;
  listen_address(std::string ip, std::uint16_t tcp_port) : host(std::move(ip)), port(tcp_port) {}
  static listen_address unix_socket(std::filesystem::path path);

  std::string host;  // IP literal without brackets; empty for a Unix socket
  std::uint16_t port = 0;
  std::filesystem::path unix_path;  // absolute; empty for TCP

  bool is_unix() const { return !unix_path.empty(); }
  // As written in the config: "127.0.0.1:25", "[::1]:25", "unix:/path".
  std::string to_string() const;
  // A TCP address no other host can reach (127.0.0.0/8, ::1); Unix sockets are local too.
  bool is_local() const;
  friend bool operator==(const listen_address&, const listen_address&) = default;
};

// A CIDR block of the client allow-list; addresses are 4 or 16 bytes.
struct network {
  std::vector<std::uint8_t> address;  // 4 bytes (IPv4) or 16 bytes (IPv6)
  unsigned prefix_length = 0;
  // True when `ip` (4 or 16 bytes, IPv4-mapped IPv6 treated as IPv4) is inside.
  bool contains(const std::vector<std::uint8_t>& ip) const;
};

struct limits_settings {
  std::uint64_t max_message_size = 35882577;  // Gmail's advertised SIZE
  std::size_t max_recipients = 100;           // Gmail's per-message cap over SMTP
  std::size_t max_connections = 200;
  std::chrono::seconds command_timeout{300};  // RFC 5321 §4.5.3.2.7
  std::chrono::seconds data_timeout{600};     // RFC 5321 §4.5.3.2.6
};

enum class upstream_tls { starttls, implicit };

struct upstream_settings {
  std::string host = "smtp.gmail.com";
  std::uint16_t port = 587;
  upstream_tls tls = upstream_tls::starttls;
  std::optional<std::filesystem::path> ca_file;
  std::size_t max_connections = 4;
  std::size_t max_messages_per_connection = 100;
  // How long the upstream may be unreachable before /health says so: a
  // blip of a few seconds is retried without anyone having to look.
  std::chrono::seconds outage_alert_after{300};
};

struct queue_settings {
  std::chrono::seconds retry_initial{60};
  std::chrono::seconds retry_max{3600};
  std::chrono::seconds lifetime{5 * 24 * 3600};
  // After this long undelivered, the sender is told once that the message
  // is delayed (RFC 3464 Action: delayed); 0: never, as Postfix's default.
  std::chrono::seconds delay_warning{0};
};

struct oauth_settings {
  std::string client_id;
  secret_string client_secret;  // never logged
  std::optional<std::filesystem::path> client_secret_file;
  std::string auth_url = "https://accounts.google.com/o/oauth2/v2/auth";
  std::string token_url = "https://oauth2.googleapis.com/token";
  std::optional<std::filesystem::path> ca_file;
  // False when the file has no `oauth` section, which only a config whose
  // accounts are all service accounts may leave out.
  bool present = true;
};

// Which identity platform and mail service an account belongs to.
enum class provider_kind { google, microsoft };
std::string_view to_string(provider_kind kind);

// providers.microsoft: the Microsoft identity platform (v2.0) and Exchange
// Online. Endpoints are {authority}/{tenant}/oauth2/v2.0/{authorize,token,devicecode}.
struct microsoft_settings {
  // "organizations" (any work or school account), "common", "consumers", or
  // the tenant's id or domain (which app-only accounts need).
  std::string tenant = "organizations";
  std::string client_id;
  secret_string client_secret;  // never logged; empty: a public client
  std::optional<std::filesystem::path> client_secret_file;
  std::string authority = "https://login.microsoftonline.com";
  std::optional<std::filesystem::path> ca_file;
  upstream_settings upstream = exchange_online_upstream();

  // Exchange Online's client submission endpoint: 587 with STARTTLS.
  static upstream_settings exchange_online_upstream() {
    upstream_settings u;
    u.host = "smtp.office365.com";
    return u;
  }
};

// Where the key that encrypts the stored OAuth tokens comes from, when the
// service has no systemd credential `token-key`.
struct secrets_settings {
  std::filesystem::path key_file = "/etc/oauth-relay/token.key";
};

// A local user or group named in `permit`, with the id it had when the
// config was loaded (names are resolved at load and on every reload).
struct local_name {
  std::string name;
  std::uint32_t id = 0;
  friend bool operator==(const local_name&, const local_name&) = default;
};

// accounts[].permit: who may send as the account. A client is permitted when
// it matches any one entry.
struct permit_settings {
  std::vector<local_name> local_users;   // the uid of the client's process
  std::vector<local_name> local_groups;  // one of that user's groups
  std::vector<std::string> logins;       // the name it authenticated as (SMTP AUTH)
};

// An account's own sending limits, over a rolling 24 hours (and a rolling
// minute for messages_per_minute); 0: none.
struct account_limits {
  std::size_t messages_per_day = 0;
  std::size_t recipients_per_day = 0;
  std::size_t messages_per_minute = 0;
  friend bool operator==(const account_limits&, const account_limits&) = default;
};

struct account_settings {
  std::string address;               // the mailbox that sends
  std::vector<std::string> senders;  // envelope sender patterns; '*' matches any run
  bool is_default = false;
  std::optional<permit_settings> permit;  // absent: every client clients.allow lets in
  account_limits limits;                  // `limits:`; none by default
  // service_account_file: a Google Workspace service account with domain-wide
  // delegation gets the account's tokens (RFC 7523), no consent; shared, so
  // copies of the settings share one copy of the key. Nothing: OAuth consent.
  std::shared_ptr<const service_account_key> service_account = nullptr;
  provider_kind provider = provider_kind::google;  // `provider:`
  // app_only (Microsoft only): the client credentials grant gets the
  // account's tokens, no one consents and no refresh token is kept.
  bool app_only = false;

  // "*@example.com" (only with a service account): each sender of the domain
  // sends as itself.
  bool is_domain_pattern() const { return address.starts_with("*@"); }
};

// `tls`: the listener's own certificate for STARTTLS (RFC 3207).
struct tls_settings {
  std::filesystem::path cert_file;  // PEM: the certificate, then its chain
  std::filesystem::path key_file;   // PEM: its private key
  friend bool operator==(const tls_settings&, const tls_settings&) = default;
};

// One alias as written, in `aliases` or in the aliases_file: who it is for
// (a local name, a full local address or "*") and where its mail goes.
struct alias_entry {
  std::string name;
  std::vector<std::string> targets;  // addresses or local names, as written
  std::string file;                  // where it was written, for errors
  int line = 0;
  friend bool operator==(const alias_entry&, const alias_entry&) = default;
};

// local_domains, aliases, aliases_file: the addresses this host answers for
// itself (mail for root); relay/smtp/local_addresses.hpp resolves them.
struct local_address_settings {
  // Empty: the defaults (localhost, `hostname`, this host's own names).
  std::vector<std::string> domains;
  std::vector<alias_entry> aliases;
  std::optional<std::filesystem::path> aliases_file;  // aliases(5), read by the daemon
};

struct settings {
  std::filesystem::path source;  // the file these came from
  std::vector<listen_address> listen{{"127.0.0.1", 25}, {"::1", 25}};
  std::string hostname;  // default: the host's name
  std::filesystem::path state_dir = "/var/lib/oauth-relay";
  std::filesystem::path health_socket = "/run/oauth-relay/health.sock";
  // Default: control.sock beside health_socket (/run/oauth-relay/control.sock).
  std::filesystem::path control_socket = "/run/oauth-relay/control.sock";
  std::vector<network> clients_allow;  // default: 127.0.0.0/8 and ::1/128
  // clients.logins_file: "name:HASH" lines for SMTP AUTH (relay/smtp/logins.hpp
  // reads it); nothing: AUTH is not offered.
  std::optional<std::filesystem::path> clients_logins_file;
  bool clients_require_login = false;  // clients.require_login: MAIL needs AUTH first
  std::optional<tls_settings> tls;     // nothing: no STARTTLS
  limits_settings limits;
  upstream_settings upstream;
  queue_settings queue;
  oauth_settings oauth;                         // Google's (the provider google)
  std::optional<microsoft_settings> microsoft;  // providers.microsoft
  secrets_settings secrets;
  std::vector<account_settings> accounts;
  local_address_settings local;
};

// One problem found in a config file, printed as FILE:LINE:COLUMN: message.
struct error {
  std::string file;
  int line = 0;    // 1-based; 0 when the problem is not at a position
  int column = 0;  // 1-based
  std::string message;
  std::string to_string() const;
};

struct load_result {
  std::optional<settings> value;  // set when errors is empty
  std::vector<error> errors;
};

// Reads and validates the YAML file at `path`; never throws for bad input.
load_result load(const std::filesystem::path& path);
// Same, from text already in memory; `name` is what errors call the file.
load_result parse(const std::string& yaml_text, const std::string& name);

// This host's name (gethostname(2), "localhost" when it fails): the default
// `hostname`, and what oauth-relay-sendmail greets with.
std::string default_hostname();
// "IP:PORT" or "[IPv6]:PORT" (port 0: any free port), the host in inet_ntop's
// canonical form, or "unix:" and an absolute path that fits a Unix socket
// address; nothing for anything else (host names included).
std::optional<listen_address> parse_listen(std::string_view text);
// What --check-config and the daemon's start warn about without refusing the
// file: a listener other hosts can reach with neither `tls` nor
// `clients.require_login`. One sentence each.
std::vector<std::string> exposure_warnings(const settings& s);
// "60s", "5m", "1h", "5d", or a plain number of seconds.
std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// "35882577", "512K", "35M" (K = 1024).
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace oauth_relay::config
