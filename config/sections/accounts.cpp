// The `accounts` section: the mailboxes the relay sends as, and which
// envelope senders each one takes. Required, at least one.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "config/provider.hpp"
#include "config/schema.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {

// sections/permit.cpp
bool read_permit(reader& r, const mapping& account, const settings& all, account_settings& out);

namespace {

constexpr std::string_view keys[] = {"accounts"};
// The keys of one account. A per-account block adds its key here and a
// reader called from read_account, in a file of its own when it is more than
// a few lines (as `permit`).
constexpr std::string_view account_keys[] = {"address",  "senders", "default",
                                             "permit",   "limits",  "service_account_file",
                                             "provider", "app_only"};

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// What one account's checks need to know about the accounts before it.
struct earlier_accounts {
  std::optional<std::size_t> default_index;
  std::vector<std::pair<std::string, std::size_t>> addresses;  // lowercased, index
};

// False when the account has an error (it is then left out).
bool read_address(reader& r, const field& item, const mapping& m, std::size_t index,
                  earlier_accounts& earlier, account_settings& account) {
  const auto address = m.find("address");
  if (!address) {
    r.missing(item, "\"address\"");
    return false;
  }
  auto text = r.scalar(*address, "an email address");
  if (!text) return false;
  // "*@example.com": every sender of the domain sends as itself, which only
  // a service account with domain-wide delegation can do (no one consents).
  const bool pattern = text->starts_with("*@");
  if (pattern && !is_domain_name(std::string_view(*text).substr(2))) {
    r.add(*address, quote(*text) + " is not a domain pattern like *@example.com");
    return false;
  }
  if (pattern && !m.find("service_account_file")) {
    r.add(*address, quote(*text) +
                        ": a domain pattern needs service_account_file (a Google Workspace "
                        "service account with domain-wide delegation)");
    return false;
  }
  if (!pattern && !is_email_address(*text)) {
    r.add(*address, quote(*text) + " is not an email address");
    return false;
  }
  bool ok = true;
  // Addresses are compared without case: Google's are.
  const std::string key = lowercase(*text);
  const auto& seen = earlier.addresses;
  const auto same =
      std::find_if(seen.begin(), seen.end(), [&](const auto& e) { return e.first == key; });
  if (same != seen.end()) {
    r.add(*address, quote(*text) + " is already accounts[" + std::to_string(same->second) + "]");
    ok = false;
  } else {
    earlier.addresses.emplace_back(key, index);
  }
  account.address = *text;
  return ok;
}

bool read_default(reader& r, const mapping& m, std::size_t index, earlier_accounts& earlier,
                  account_settings& account) {
  const auto is_default = m.find("default");
  if (!is_default) return true;
  const auto value = r.boolean(*is_default);
  if (!value) return false;
  account.is_default = *value;
  if (!*value) return true;
  if (earlier.default_index) {
    r.add(*is_default, "accounts[" + std::to_string(*earlier.default_index) +
                           "] is already the default; at most one account may be default");
    return false;
  }
  earlier.default_index = index;
  return true;
}

bool read_senders(reader& r, const mapping& m, account_settings& account) {
  const auto senders = m.find("senders");
  if (senders && account.is_domain_pattern()) {
    r.add(*senders,
          "a domain pattern account takes the senders of its domain, each as itself; "
          "leave senders out");
    return false;
  }
  if (!senders) {
    // Without patterns an account sends only as itself.
    if (!account.is_default && !account.address.empty()) {
      account.senders.push_back(account.address);
    }
    return true;
  }
  if (senders->value.IsSequence() && senders->value.size() == 0) {
    if (account.is_default) return true;
    r.add(*senders, "expected at least one sender pattern (or default: true), got an empty list");
    return false;
  }
  const auto patterns = r.list(*senders, "sender pattern");
  if (!patterns) return false;
  bool ok = true;
  for (const field& p : *patterns) {
    if (auto text = r.checked(p, "an address or a pattern like *@example.com", is_sender_pattern)) {
      account.senders.push_back(std::move(*text));
    } else {
      ok = false;
    }
  }
  return ok;
}

// `limits: {messages_per_day, recipients_per_day, messages_per_minute}`: the
// relay's own pacing over a rolling 24 hours (a rolling minute for the
// last), each optional and at least 1.
bool read_limits(reader& r, const mapping& m, account_settings& account) {
  const auto limits = m.find("limits");
  if (!limits) return true;
  const mapping l(r, *limits, {"messages_per_day", "recipients_per_day", "messages_per_minute"});
  if (!l.ok()) return false;
  bool ok = true;
  auto read_one = [&](std::string_view key, std::size_t& out) {
    const auto f = l.find(key);
    if (!f) return;
    if (auto n = r.positive(*f)) {
      out = *n;
    } else {
      ok = false;
    }
  };
  read_one("messages_per_day", account.limits.messages_per_day);
  read_one("recipients_per_day", account.limits.recipients_per_day);
  read_one("messages_per_minute", account.limits.messages_per_minute);
  return ok;
}

// service_account_file: Google's JSON key, read and checked now so that
// --check-config and a reload catch a bad or unreadable key.
bool read_service_account(reader& r, const mapping& m, account_settings& account) {
  const auto file = m.find("service_account_file");
  if (!file) return true;
  if (account.is_default && account.is_domain_pattern()) {
    r.add(*file, "a domain pattern cannot be the default account (the null sender is no mailbox)");
    return false;
  }
  const auto p = r.path(*file);
  if (!p) return false;
  auto key = read_service_account_key(*p);
  if (auto* error = std::get_if<std::string>(&key)) {
    r.add(*file, *error);
    return false;
  }
  account.service_account =
      std::make_shared<const service_account_key>(std::move(std::get<service_account_key>(key)));
  return true;
}

// provider: google (the default) or microsoft, which needs providers.microsoft.
bool read_provider(reader& r, const mapping& m, const settings& all, account_settings& account) {
  const auto provider = m.find("provider");
  if (!provider) return true;
  const auto text = r.scalar(*provider, "google or microsoft");
  if (!text) return false;
  if (*text == "google") return true;
  if (*text != "microsoft") {
    r.add(*provider, quote(*text) + " is not a provider; expected google or microsoft");
    return false;
  }
  if (!all.microsoft) {
    r.add(*provider,
          "microsoft needs a providers.microsoft section (its tenant and client_id at least)");
    return false;
  }
  if (m.find("service_account_file")) {
    r.add(*provider,
          "service_account_file is Google's; a Microsoft account without a person's consent is "
          "app_only: true");
    return false;
  }
  account.provider = provider_kind::microsoft;
  // Exchange Online's own caps, so the relay holds the mail instead of
  // hearing Exchange refuse it.
  if (account.limits.recipients_per_day == 0) {
    account.limits.recipients_per_day = exchange_recipients_per_day;
  }
  if (account.limits.messages_per_minute == 0) {
    account.limits.messages_per_minute = exchange_messages_per_minute;
  }
  return true;
}

// app_only: Microsoft's client credentials grant, which needs a tenant of
// its own (the token names the tenant's application) and a client secret.
bool read_app_only(reader& r, const mapping& m, const settings& all, account_settings& account) {
  const auto app_only = m.find("app_only");
  if (!app_only) return true;
  const auto value = r.boolean(*app_only);
  if (!value) return false;
  if (!*value) return true;
  if (account.provider != provider_kind::microsoft) {
    r.add(*app_only,
          "app_only is for provider: microsoft (a Google Workspace account without consent uses "
          "service_account_file)");
    return false;
  }
  if (is_multi_tenant(all.microsoft->tenant)) {
    r.add(*app_only,
          "app_only needs providers.microsoft.tenant to be the tenant's id or domain, "
          "not " +
              quote(all.microsoft->tenant) +
              " (the client credentials grant names one organization)");
    return false;
  }
  if (all.microsoft->client_secret.empty()) {
    r.add(*app_only,
          "app_only needs providers.microsoft.client_secret_file (the client "
          "credentials grant authenticates the application)");
    return false;
  }
  account.app_only = true;
  return true;
}

void read_account(reader& r, const field& item, std::size_t index, earlier_accounts& earlier,
                  settings& all) {
  const mapping m(r, item, account_keys);
  if (!m.ok()) return;
  if (item.value.IsNull()) {
    r.add(item, "expected a mapping, got nothing");
    return;
  }
  account_settings account;
  // Each check runs even after one failed, so that every error is reported.
  bool ok = read_address(r, item, m, index, earlier, account);
  ok = read_default(r, m, index, earlier, account) && ok;
  ok = read_senders(r, m, account) && ok;
  ok = read_permit(r, m, all, account) && ok;
  ok = read_limits(r, m, account) && ok;
  ok = read_service_account(r, m, account) && ok;
  ok = read_provider(r, m, all, account) && ok;
  ok = read_app_only(r, m, all, account) && ok;
  if (ok) all.accounts.push_back(std::move(account));
}

void read(reader& r, const mapping& top, settings& all) {
  const auto f = top.find("accounts");
  if (!f) {
    r.missing(top.self(), "\"accounts\"");
    return;
  }
  const auto items = r.list(*f, "account");
  if (!items) return;
  earlier_accounts earlier;
  for (std::size_t index = 0; index < items->size(); ++index) {
    read_account(r, (*items)[index], index, earlier, all);
  }
  // Service accounts and Microsoft's accounts bring their own clients; any
  // other account needs Google's OAuth client its refresh token was issued to.
  const auto by_consent =
      std::find_if(all.accounts.begin(), all.accounts.end(), [](const account_settings& a) {
        return !a.service_account && a.provider == provider_kind::google;
      });
  if (!all.oauth.present && by_consent != all.accounts.end()) {
    r.missing(top.self(), "\"oauth\" (the OAuth client of " + by_consent->address +
                              ", an account authorized by consent)");
  }
}

}  // namespace

extern const section accounts_section{keys, read};

}  // namespace oauth_relay::config
