// Rewriting the recipients of the relay's own reports to local senders;
// everything else the scheduler asks goes to the spool unchanged.
#include "relay/spool/local_bounces.hpp"

#include <algorithm>

#include "config/log.hpp"

namespace oauth_relay::relay {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
    };
    return lower(x) == lower(y);
  });
}

}  // namespace

std::vector<recipient> expand_local_recipients(const local_addresses& local,
                                               const std::vector<recipient>& recipients,
                                               std::vector<std::string>& unknown) {
  std::vector<recipient> out;
  auto add = [&](const std::string& address, const smtp::rcpt_parameters& params) {
    const bool known = std::any_of(out.begin(), out.end(),
                                   [&](const recipient& r) { return iequals(r.address, address); });
    if (!known) out.push_back({address, params});
  };
  for (const auto& r : recipients) {
    auto expansion = local.expand(r.address);
    switch (expansion.what) {
      case local_addresses::expansion::kind::not_local:
        add(r.address, r.params);
        break;
      case local_addresses::expansion::kind::expanded:
        for (const auto& a : expansion.addresses) add(a, r.params);
        break;
      case local_addresses::expansion::kind::unknown:
        unknown.push_back(r.address);
        break;
    }
  }
  return out;
}

boost::asio::awaitable<spool_result<void>> local_bounces::record(
    delivery_record record, std::optional<generated_message> bounce) {
  if (bounce && local_) {
    std::vector<std::string> unknown;
    bounce->env.recipients = expand_local_recipients(*local_, bounce->env.recipients, unknown);
    for (const auto& address : unknown) {
      // Gmail would refuse it, and a report about a report is never sent.
      log::warning("report_not_sent")
          .kv("id", record.id)
          .kv("to", address)
          .kv("reason", "a local address that no alias maps");
    }
    if (bounce->env.recipients.empty()) bounce.reset();
  }
  return spool_.record(std::move(record), std::move(bounce));
}

}  // namespace oauth_relay::relay
