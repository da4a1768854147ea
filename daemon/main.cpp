// oauth-relayd: plain SMTP in from local applications, Gmail (XOAUTH2) out.
// Parses the command line, loads the configuration and runs the service.
#include <malloc.h>
#include <sys/stat.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "auth/curl_setup.hpp"
#include "common/secret.hpp"
#include "config/config.hpp"
#include "daemon/service.hpp"

namespace {
constexpr int trim_threshold = 64 << 20;
constexpr int mmap_threshold = 1 << 20;  // a spooled message is at most 256 KiB in memory
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"oauth-relayd: relays mail from local applications to Gmail with OAuth"};
  std::string config_path = "/etc/oauth-relay/config.yaml";
  bool check_config = false;
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.add_flag("--check-config", check_config, "validate the configuration and exit");
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
