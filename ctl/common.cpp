// Shared helpers of the oauth-relayctl commands.
#include "ctl/common.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <ostream>

#include "auth/token_key.hpp"
#include "ctl/state_access.hpp"

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
  // A mailbox of a service account's domain pattern ("*@example.com").
  for (const auto& account : ctx.settings.accounts) {
    if (account.is_domain_pattern() && config::pattern_covers(account.address, address)) {
      return account;
    }
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
  act_as_state_owner(ctx);
  try {
    return std::make_unique<auth::token_store>(
        ctx.settings.state_dir, auth::token_cipher_for(ctx.settings, auth::key_creation::never));
  } catch (const auth::token_key_error& e) {
    throw failure(e.what(), e.fix());
  } catch (const auth::token_store_error& e) {
    const std::string what = e.what();
    const std::string dir = ctx.settings.state_dir.string();
    if (what.find("symbolic link") != std::string::npos) {
      throw failure("cannot open the token store: " + what,
                    "only oauth-relayd's own files belong in " + dir +
                        ": remove the link, then run this again");
    }
    throw failure("cannot open the token store: " + what,
                  "run oauth-relayctl as root or as the user oauth-relayd runs as (the owner of " +
                      dir + ")");
  }
}

}  // namespace oauth_relay::ctl
