// oauth-relayctl: the administrator's tool (consent, accounts, the connection
// test, the queue, status, SMTP AUTH logins, aliases). Parses the command line and runs one
// command.
#include <sys/stat.h>

#include <iostream>

#include <CLI/CLI.hpp>

#include "auth/curl_setup.hpp"
#include "common/secret.hpp"
#include "config/config.hpp"
#include "config/log.hpp"
#include "ctl/accounts.hpp"
#include "ctl/aliases.hpp"
#include "ctl/authorize.hpp"
#include "ctl/common.hpp"
#include "ctl/logins.hpp"
#include "ctl/queue.hpp"

namespace {

using namespace oauth_relay;

int fail(const std::string& cause, const std::string& fix) {
  std::cout.flush();
  std::cerr << "error: " << cause << "\n"
            << "hint: " << fix << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"oauth-relayctl: accounts, consent, queue and status of oauth-relayd"};
  app.fallthrough();  // -c works after the command name too
  app.require_subcommand(1);
  std::string config_path = "/etc/oauth-relay/config.yaml";
  app.add_option("-c,--config", config_path, "configuration file")->capture_default_str();
  app.set_version_flag("--version", std::string("oauth-relayctl ") + OAUTH_RELAY_VERSION);

  ctl::authorize_options authorize;
  long timeout_seconds = ctl::default_consent_timeout.count();
  auto* authorize_cmd = app.add_subcommand(
      "authorize", "give oauth-relay access to ADDRESS's Gmail: Google's consent in a browser");
  authorize_cmd->add_option("ADDRESS", authorize.address, "the account, as in the config")
      ->required();
  authorize_cmd->add_flag("--no-browser", authorize.no_browser,
                          "only print the URL; do not start a browser");
  authorize_cmd->add_flag("--device", authorize.device,
                          "Microsoft accounts: sign in on any device with a code (device code "
                          "flow) instead of the loopback redirect");
  authorize_cmd
      ->add_option("--port", authorize.port,
                   "port of the loopback listener on 127.0.0.1 (default: any free port)")
      ->check(CLI::Range(0, 65535));
  authorize_cmd->add_option("--timeout", timeout_seconds, "seconds to wait for Google's answer")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();

  ctl::import_options import;
  bool no_verify = false;
  auto* import_cmd =
      app.add_subcommand("import", "store a refresh token for ADDRESS obtained elsewhere");
  import_cmd->add_option("ADDRESS", import.address, "the account, as in the config")->required();
  import_cmd
      ->add_option("--refresh-token-file", import.file,
                   "file holding the refresh token alone (- for standard input)")
      ->required();
  import_cmd->add_flag("--no-verify", no_verify,
                       "store it without checking it at the token endpoint");

  bool json = false;
  auto* accounts_cmd = app.add_subcommand("accounts", "each account's token state and activity");
  accounts_cmd->add_flag("--json", json, "one JSON document on standard output");

  std::string test_address;
  auto* test_cmd = app.add_subcommand(
      "test", "refresh the token, connect and authenticate to the upstream, quit");
  test_cmd->add_option("ADDRESS", test_address, "the account, as in the config")->required();

  auto* queue_cmd = app.add_subcommand("queue", "the queued messages (oldest first)");
  queue_cmd->require_subcommand(0, 1);
  queue_cmd->add_flag("--json", json, "one JSON document on standard output");
  ctl::queue_page page;
  queue_cmd
      ->add_option("--limit", page.limit,
                   "at most this many messages (the daemon lists a page at a time)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  queue_cmd
      ->add_option("--after", page.after,
                   "start after this position: what the previous page printed last")
      ->check(CLI::Validator(
          [](const std::string& text) {
            const bool digits = !text.empty() && text.size() <= 18 &&
                                text.find_first_not_of("0123456789") == std::string::npos;
            return digits ? std::string() : "the position the previous page printed (a number)";
          },
          "CURSOR"));
  std::vector<std::string> retry_ids;
  bool retry_all = false;
  auto* retry_cmd = queue_cmd->add_subcommand("retry", "make queued messages due now");
  retry_cmd->add_option("ID", retry_ids, "message ids (see oauth-relayctl queue)");
  retry_cmd->add_flag("--all", retry_all, "every queued message");
  retry_cmd->add_flag("--json", json, "the daemon's answer as JSON");
  std::vector<std::string> delete_ids;
  auto* delete_cmd = queue_cmd->add_subcommand("delete", "remove queued messages (no bounce)");
  delete_cmd->add_option("ID", delete_ids, "message ids (see oauth-relayctl queue)")->required();
  delete_cmd->add_flag("--json", json, "the daemon's answer as JSON");

  auto* status_cmd = app.add_subcommand("status", "what oauth-relayd's health socket says");
  status_cmd->add_flag("--json", json, "one JSON document on standard output");

  auto* login_cmd = app.add_subcommand(
      "login", "SMTP AUTH logins for clients that insist on one (clients.logins_file)");
  login_cmd->require_subcommand(1);
  std::string login_name;
  bool password_stdin = false;
  auto* login_add_cmd =
      login_cmd->add_subcommand("add", "add NAME, or set its password (asked twice, not shown)");
  login_add_cmd->add_option("NAME", login_name, "the login name")->required();
  login_add_cmd->add_flag("--password-stdin", password_stdin,
                          "read the password from standard input (one line)");
  auto* login_remove_cmd = login_cmd->add_subcommand("remove", "remove NAME");
  login_remove_cmd->add_option("NAME", login_name, "the login name")->required();
  auto* login_list_cmd =
      login_cmd->add_subcommand("list", "the logins and the accounts whose permit names them");

  auto* aliases_cmd = app.add_subcommand(
      "aliases", "the local domains and where mail for each local name goes (resolved)");
  aliases_cmd->add_flag("--json", json, "one JSON document on standard output");

  try {
    app.parse(argc, argv);
    if (retry_cmd->parsed() && retry_all == !retry_ids.empty()) {
      throw CLI::ValidationError("queue retry", "give message ids or --all (not both)");
    }
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }

  // Quiet: the commands say what matters; library log lines would repeat it.
  log::set_threshold(log::level::error);
  ::umask(077);
  // It reads the token key and refresh tokens: no core dump may carry them.
  if (const auto problem = disable_core_dumps(); !problem.empty()) {
    return fail("cannot turn core dumps off: " + problem, "this is unexpected; please report it");
  }

  if (const auto problem = auth::libcurl_problem(); !problem.empty()) {
    return fail(problem, "oauth-relayctl talks to Google and oauth-relayd through libcurl");
  }

  auto loaded = config::load(config_path);
  if (!loaded.errors.empty()) {
    for (const auto& e : loaded.errors) std::cerr << e.to_string() << '\n';
    return fail("the configuration " + config_path + " is not valid (see above)",
                "fix the lines named above; oauth-relayd -c " + config_path +
                    " --check-config checks it again");
  }
  ctl::context ctx{config_path, std::move(*loaded.value)};

  try {
    if (authorize_cmd->parsed()) {
      authorize.timeout = std::chrono::seconds(timeout_seconds);
      return ctl::run_authorize(ctx, authorize);
    }
    if (import_cmd->parsed()) {
      import.verify = !no_verify;
      return ctl::run_import(ctx, import);
    }
    if (accounts_cmd->parsed()) return ctl::run_accounts(ctx, json);
    if (test_cmd->parsed()) return ctl::run_test(ctx, test_address);
    if (retry_cmd->parsed()) return ctl::run_queue_retry(ctx, retry_ids, retry_all, json);
    if (delete_cmd->parsed()) return ctl::run_queue_delete(ctx, delete_ids, json);
    if (queue_cmd->parsed()) return ctl::run_queue_list(ctx, page, json);
    if (status_cmd->parsed()) return ctl::run_status(ctx, json);
    if (login_add_cmd->parsed()) return ctl::run_login_add(ctx, login_name, password_stdin);
    if (login_remove_cmd->parsed()) return ctl::run_login_remove(ctx, login_name);
    if (login_list_cmd->parsed()) return ctl::run_login_list(ctx);
    if (aliases_cmd->parsed()) return ctl::run_aliases(ctx, json);
  } catch (const ctl::failure& f) {
    return fail(f.what(), f.fix());
  } catch (const std::exception& e) {
    return fail(e.what(), "this is unexpected; please report it with the command you ran");
  }
  return 2;
}
