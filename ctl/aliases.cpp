// The resolved alias table, read from the config and aliases_file as the
// daemon reads them at start and on SIGHUP: what it shows is what the
// daemon does (once reloaded).
#include "ctl/aliases.hpp"

#include <iostream>

#include <nlohmann/json.hpp>

#include "relay/smtp/alias_loader.hpp"

namespace oauth_relay::ctl {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

int run_aliases(const context& ctx, bool json) {
  const auto loaded = relay::load_local_addresses(ctx.settings);
  for (const auto& w : loaded.warnings) std::cerr << "warning: " << w << '\n';
  if (!loaded.table) {
    for (const auto& e : loaded.errors) std::cerr << e << '\n';
    throw failure("the aliases are refused (see above); oauth-relayd keeps the ones it runs with",
                  "fix the lines named above; oauth-relayd -c " + ctx.config_path.string() +
                      " --check-config checks them again");
  }
  const auto& table = *loaded.table;
  if (json) {
    nlohmann::json doc;
    doc["local_domains"] = table.domains();
    doc["aliases"] = nlohmann::json::array();
    for (const auto& a : table.resolved()) {
      doc["aliases"].push_back({{"name", a.name}, {"addresses", a.addresses}, {"from", a.origin}});
    }
    std::cout << doc.dump(2) << '\n';
    return 0;
  }
  std::cout << "local domains: " << joined(table.domains()) << " (bare names get @"
            << table.domains().front() << ")\n";
  if (table.resolved().empty()) {
    std::cout << "no aliases: mail for a local name is refused (550 5.1.1)\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "DELIVERED TO", "FROM"}};
  for (const auto& a : table.resolved()) rows.push_back({a.name, joined(a.addresses), a.origin});
  print_table(std::cout, rows);
  return 0;
}

}  // namespace oauth_relay::ctl
