// oauth-relayd: plain SMTP in from local applications, Gmail (XOAUTH2) out.
// Parses the command line, loads the configuration and runs the service.
#include <malloc.h>
#include <sys/stat.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "auth/curl_setup.hpp"
#include "auth/jwt_bearer.hpp"
#include "common/secret.hpp"
#include "config/config.hpp"
#include "config/log.hpp"
#include "daemon/service.hpp"
#include "relay/smtp/alias_loader.hpp"
#include "relay/smtp/logins.hpp"
#include "relay/smtp/server_tls.hpp"

namespace {
constexpr int trim_threshold = 64 << 20;
constexpr int mmap_threshold = 1 << 20;  // a spooled message is at most 256 KiB in memory

// What --check-config checks beyond the YAML: the files the listener reads
// (certificate and key, logins, aliases: loops and targets nobody maps) and
// the service accounts' private keys. Each problem on one line; empty when
// fine.
std::vector<std::string> listener_file_problems(
    const oauth_relay::config::settings& s,
    const oauth_relay::relay::local_addresses::build_result& local) {
  std::vector<std::string> problems;
  if (s.tls) {
    try {
      oauth_relay::relay::make_server_tls(*s.tls);
    } catch (const oauth_relay::relay::tls_config_error& e) {
      problems.push_back(e.what());
    }
  }
  if (s.clients_logins_file) {
    auto loaded = oauth_relay::relay::login_table::load(*s.clients_logins_file);
    for (auto& e : loaded.errors) problems.push_back(std::move(e));
  }
  problems.insert(problems.end(), local.errors.begin(), local.errors.end());
  // The config read the service accounts' key files; OpenSSL must take their keys.
  for (const auto& a : s.accounts) {
    if (!a.service_account) continue;
    if (auto p = oauth_relay::auth::service_account_key_problem(*a.service_account); !p.empty()) {
      problems.push_back(std::move(p));
    }
  }
  return problems;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"oauth-relayd: relays mail from local applications to Gmail with OAuth"};
  std::string config_path = "/etc/oauth-relay/config.yaml";
  bool check_config = false;
  std::string log_level = "info";
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
  app.add_option("--log-level", log_level, "lowest priority logged")
      ->check(CLI::IsMember({"error", "warning", "notice", "info", "debug"}))
      ->capture_default_str();
  app.set_version_flag("--version", std::string("oauth-relayd ") + OAUTH_RELAY_VERSION);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }

  // Everything the daemon creates (database, spool files) is for its own user only.
  ::umask(077);
  // It holds the token key, refresh tokens and the client secret: no core
  // dump may carry them, whatever the unit or ulimit says (LimitCORE=0 too).
  if (const auto problem = oauth_relay::disable_core_dumps(); !problem.empty()) {
    std::cerr << "oauth-relayd: cannot turn core dumps off: " << problem << '\n';
    return 1;
  }

  using oauth_relay::log::level;
  const std::pair<const char*, level> levels[] = {{"error", level::error},
                                                  {"warning", level::warning},
                                                  {"notice", level::notice},
                                                  {"info", level::info},
                                                  {"debug", level::debug}};
  for (const auto& [name, l] : levels) {
    if (log_level == name) oauth_relay::log::set_threshold(l);
  }

  auto loaded = oauth_relay::config::load(config_path);
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << '\n';
    return 1;
  }
  // Token requests must be https-only and verified; a libcurl that cannot
  // promise that is refused before anything is sent.
  if (const auto problem = oauth_relay::auth::libcurl_problem(); !problem.empty()) {
    std::cerr << "error: " << problem << '\n';
    return 1;
  }
  if (check_config) {
    const auto local = oauth_relay::relay::load_local_addresses(*loaded.value);
    const auto problems = listener_file_problems(*loaded.value, local);
    for (const auto& p : problems) std::cerr << p << '\n';
    if (!problems.empty()) return 1;
    // Warnings leave the exit status 0: the file is valid, only risky.
    for (const auto& w : oauth_relay::config::exposure_warnings(*loaded.value)) {
      std::cerr << config_path << ": warning: " << w << '\n';
    }
    for (const auto& w : local.warnings) {
      std::cerr << "warning: " << w << '\n';
    }
    std::cout << config_path << ": ok\n";
    return 0;
  }
  // glibc hands freed memory back to the kernel as soon as a heap's top is
  // 128 KiB free, and every such madvise stops all threads for a TLB flush:
  // under load that cost a third of the daemon's CPU. Memory is kept while
  // busy and returned at once when the spool goes idle (malloc_trim).
  ::mallopt(M_TRIM_THRESHOLD, trim_threshold);
  ::mallopt(M_MMAP_THRESHOLD, mmap_threshold);
  return oauth_relay::daemon::run(config_path, std::move(*loaded.value));
}
