// What every oauth-relayctl command shares: the loaded config, the failure
// that becomes "error: CAUSE" and "hint: FIX" with exit status 1, formatting
// of durations and times, and the token store opened as its owner.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "auth/oauth_errors.hpp"
#include "auth/token_store.hpp"
#include "common/clock.hpp"
#include "config/config.hpp"

namespace oauth_relay::ctl {

// A command failed: exit status 1, `what()` is the one-line cause, `fix` the hint.
class failure : public std::runtime_error {
 public:
  failure(const std::string& cause, std::string fix)
      : std::runtime_error(cause), fix_(std::move(fix)) {}
  explicit failure(const auth::advice& a) : failure(a.cause, a.fix) {}
  const std::string& fix() const { return fix_; }

 private:
  std::string fix_;
};

struct context {
  std::filesystem::path config_path;
  config::settings settings;
};

std::string lower(std::string_view text);

// The configured account named `address` (case-insensitive), or the service
// account whose domain pattern covers it, or a failure saying to add it to the config.
const config::account_settings& require_account(const context& ctx, std::string_view address);

// "45s", "5m", "2h 3m", "3d 4h": coarse, for people.
std::string format_duration(std::int64_t seconds);

// Columns padded to the widest cell, two spaces apart.
void print_table(std::ostream& out, const std::vector<std::vector<std::string>>& rows);

// The accounts table in state_dir with the token key (never made here),
// opened as the directory's owner (see act_as_state_owner), or a failure
// saying what is wrong with the key or who may open the database.
std::unique_ptr<auth::token_store> open_store(const context& ctx);

}  // namespace oauth_relay::ctl
