// Shared helpers of the oauth-relayctl commands.
#include "ctl/common.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <ostream>

#include "auth/token_key.hpp"
#include "ctl/health_client.hpp"

namespace oauth_relay::ctl {

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

const config::account_settings& require_account(const context& ctx, std::string_view address) {
  const std::string wanted = lower(address);
  for (const auto& account : ctx.settings.accounts) {
    if (lower(account.address) == wanted) return account;
  }
  throw failure(std::string(address) + " is not an account in " + ctx.config_path.string(),
                "add it under accounts: in " + ctx.config_path.string() +
                    " (- address: " + std::string(address) +
                    "), reload the daemon (systemctl reload oauth-relay) and run this again");
}

std::string format_duration(std::int64_t seconds) {
  if (seconds < 0) seconds = 0;
  constexpr std::int64_t minute = 60, hour = 3600, day = 86400;
  auto part = [](std::int64_t n, const char* unit) { return std::to_string(n) + unit; };
  if (seconds < minute) return part(seconds, "s");
  if (seconds < hour) return part(seconds / minute, "m");
  if (seconds < day) {
    const auto m = seconds % hour / minute;
    return part(seconds / hour, "h") + (m ? " " + part(m, "m") : "");
  }
  const auto h = seconds % day / hour;
  return part(seconds / day, "d") + (h ? " " + part(h, "h") : "");
}

void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()));
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out << line << "\n";
  }
}

std::unique_ptr<auth::token_store> open_store(const context& ctx) {
  try {
    return std::make_unique<auth::token_store>(
        ctx.settings.state_dir, auth::token_cipher_for(ctx.settings, auth::key_creation::never));
  } catch (const auth::token_key_error& e) {
    throw failure(e.what(), e.fix());
  } catch (const auth::token_store_error& e) {
    throw failure(std::string("cannot open the token store: ") + e.what(),
                  "run oauth-relayctl as root or as the user oauth-relayd runs as (the owner of " +
                      ctx.settings.state_dir.string() + ")");
  }
}

void give_state_files_to_owner(const std::filesystem::path& state_dir) {
  if (::geteuid() != 0) return;
  struct stat dir {};
  if (::stat(state_dir.c_str(), &dir) != 0 || dir.st_uid == 0) return;
  for (const char* name : {"queue.db", "queue.db-wal", "queue.db-shm"}) {
    const auto path = state_dir / name;
    struct stat file {};
    if (::lstat(path.c_str(), &file) != 0 || !S_ISREG(file.st_mode) || file.st_uid != 0) continue;
    // Best effort: if it fails the daemon's own error names the file.
    [[maybe_unused]] const int rc = ::lchown(path.c_str(), dir.st_uid, dir.st_gid);
  }
}

void notify_daemon(const context& ctx, std::string_view address, std::ostream& out) {
  health_client client(ctx.settings.health_socket, std::chrono::seconds(5));
  health_reply reply;
  std::string error;
  switch (client.try_post("/accounts/reload", nlohmann::json::object(), reply, error)) {
    case health_client::reach::ok:
      if (reply.status == 200) {
        out << "oauth-relayd reloaded the account; mail waiting for " << address
            << " goes out now\n";
      } else {
        out << "oauth-relayd answered the reload with HTTP " << reply.status
            << "; it picks the token up within a few seconds anyway\n";
      }
      return;
    case health_client::reach::not_running:
      out << "oauth-relayd is not running; it will use the token when it starts (systemctl start "
             "oauth-relay)\n";
      return;
    case health_client::reach::failed:
      out << "could not tell oauth-relayd (" << error
          << "); it picks the token up within a few seconds anyway\n";
      return;
  }
}

}  // namespace oauth_relay::ctl
