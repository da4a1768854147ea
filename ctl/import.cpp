// oauth-relayctl import: a refresh token obtained elsewhere, checked with one
// refresh at the account's provider (unless --no-verify) and stored.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "auth/consent.hpp"
#include "auth/http_client.hpp"
#include "auth/token_client.hpp"
#include "common/secret.hpp"
#include "config/provider.hpp"
#include "ctl/authorize.hpp"
#include "ctl/state_access.hpp"

namespace oauth_relay::ctl {
namespace {

// A refresh token is a few hundred bytes; a file far larger is the wrong file.
constexpr std::size_t max_token_file = 64 * 1024;

std::string read_token(const std::string& file) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw failure("cannot read " + file + ": " + std::strerror(errno),
                    "give the file that holds the refresh token, or - to read it from standard "
                    "input");
    }
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  const std::string name = file == "-" ? std::string("standard input") : file;
  if (text.size() > max_token_file) {
    throw failure(name + " is too large to hold a refresh token",
                  "the file must hold the refresh token alone (a few hundred characters)");
  }
  const auto begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string::npos) {
    throw failure(name + " holds no refresh token (it is empty)",
                  "put the refresh token in it, alone; or let oauth-relayctl authorize ADDRESS get "
                  "one");
  }
  const auto end = text.find_last_not_of(" \t\r\n");
  std::string token = text.substr(begin, end - begin + 1);
  for (unsigned char c : token) {
    if (c <= 0x20 || c == 0x7f) {
      throw failure(name + " holds more than a refresh token (it contains spaces or line breaks)",
                    "the file must hold the refresh token alone, such as 1//0g... (not the JSON "
                    "it came in)");
    }
  }
  return token;
}

}  // namespace

int run_import(const context& ctx, const import_options& options) {
  const auto& account = require_account(ctx, options.address);
  if (account.service_account) {
    throw failure(options.address + " is a service account (" +
                      account.service_account->client_email +
                      "): it has no refresh token to import; its key file is its credential",
                  "nothing to import; check it with: oauth-relayctl test " +
                      mailbox_to_test(options.address));
  }
  if (account.app_only) {
    throw failure(options.address +
                      " is app_only: it has no refresh token to import; the app's "
                      "client secret is its credential",
                  "nothing to import; check it with: oauth-relayctl test " + options.address);
  }
  const auto provider = config::provider_of(ctx.settings, account.provider);
  const std::string address = account.address;
  const secret_string token = read_token(options.file);  // wiped when the command ends
  // Fail before asking Google, not after.
  check_token_can_be_stored(ctx);

  token_to_store stored{address, token, {}, 0};
  auth::token_response checked;
  if (options.verify) {
    const auth::token_client client(std::make_shared<auth::curl_http_client>(), provider);
    checked = client.refresh(token);
    if (!checked.ok()) {
      auto why =
          auth::explain_token_failure(checked, auth::oauth_step::refresh, address, provider.oauth);
      if (checked.failure == auth::token_failure::temporary) {
        why.fix += "; or store the token unchecked with --no-verify";
      }
      throw failure(why.cause + "; nothing was stored", why.fix);
    }
    if (!checked.identity_error.empty()) {
      throw failure(
          "the answer to the check does not name the account: " + checked.identity_error +
              "; nothing was stored",
          "check oauth.token_url and oauth.client_id, or run: oauth-relayctl authorize " + address);
    }
    if (!checked.email.empty() && lower(checked.email) != lower(address)) {
      throw failure(
          "this refresh token belongs to " + checked.email + ", not " + address +
              "; nothing was stored",
          "import the token of " + address + ", or run: oauth-relayctl authorize " + address);
    }
    const std::string_view needed =
        provider.is_microsoft() ? config::microsoft_send_scope : auth::mail_scope;
    if (!auth::scope_granted(checked.scope, needed)) {
      throw failure("this refresh token does not grant " + std::string(needed) +
                        " (SMTP needs it); nothing was stored",
                    "get a token with that scope: oauth-relayctl authorize " + address);
    }
    // The endpoint may have rotated the token; the access token of the check
    // saves the daemon a refresh.
    if (!checked.refresh_token.empty()) stored.refresh_token = checked.refresh_token;
    stored.access_token = checked.access_token;
    stored.access_expires_at = now_seconds() + checked.expires_in.count();
  }
  std::ostringstream note;
  store_token(ctx, stored, note);
  std::cout << "imported a refresh token for " << address
            << (options.verify ? " (checked: Google issued an access token with it)"
                               : " (not checked)")
            << "\n"
            << note.str() << std::flush;
  if (options.verify && checked.email.empty()) {
    // Google sends an id_token on a refresh only when the token was granted
    // with "openid email": without one, nothing says whose mailbox this is.
    std::cerr << "warning: Google's answer named no account (no id_token with an email), so it "
                 "was not checked that this token belongs to "
              << address
              << "; Gmail will refuse it at the first delivery if it does not. oauth-relayctl "
                 "authorize "
              << address << " checks the account." << std::endl;
  }
  return 0;
}

}  // namespace oauth_relay::ctl
