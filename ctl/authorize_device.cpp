// oauth-relayctl authorize ADDRESS --device: Microsoft's device code flow
// (RFC 8628) for servers without a browser; the polling decision is auth/device_code.
#include <chrono>
#include <iostream>
#include <memory>
#include <sstream>
#include <thread>

#include "auth/consent.hpp"
#include "auth/device_code.hpp"
#include "auth/http_client.hpp"
#include "auth/token_client.hpp"
#include "common/secret.hpp"
#include "ctl/authorize.hpp"
#include "ctl/state_access.hpp"

namespace oauth_relay::ctl {

int run_device_authorize(const context& ctx, const config::provider& provider,
                         const std::string& address) {
  const std::string again = "oauth-relayctl authorize " + address + " --device";
  // Fail before the sign-in, not after it.
  check_token_can_be_stored(ctx);

  const auth::token_client client(std::make_shared<auth::curl_http_client>(), provider);
  auto started = client.start_device_authorization();
  if (!started.ok()) {
    const auto why = auth::explain_token_failure(started.failure, auth::oauth_step::consent,
                                                 address, provider.oauth);
    throw failure(why.cause, why.fix + (why.fix.empty() ? "" : "; ") +
                                 "the device code flow needs \"Allow public client flows\" in the "
                                 "app registration (Entra ID > App registrations > "
                                 "Authentication)");
  }
  std::cout << "To authorize " << address << ", open " << started.verification_uri
            << " in a browser on any device, enter the code " << started.user_code
            << " and sign in as " << address << "." << std::endl;
  std::cerr << "Waiting up to " << format_duration(started.expires_in.count())
            << " for the sign-in (polling every " << format_duration(started.interval.count())
            << ")..." << std::endl;

  std::chrono::seconds interval = started.interval;
  const auto deadline =
      std::chrono::steady_clock::now() +
      (started.expires_in.count() > 0 ? started.expires_in : std::chrono::seconds(900));
  for (;;) {
    std::this_thread::sleep_for(interval);
    if (std::chrono::steady_clock::now() > deadline) {
      throw failure("nobody signed in with the code " + started.user_code +
                        " before it expired; nothing was stored",
                    "run " + again + " again and sign in within " +
                        format_duration(started.expires_in.count()));
    }
    const auto r = client.poll_device(started.device_code);
    const auto decision = auth::decide_device_poll(r, interval);
    if (decision.next == auth::device_next::poll_again) {
      if (decision.interval != interval) {
        std::cerr << "The sign-in service asked to poll more slowly: every "
                  << format_duration(decision.interval.count()) << " from now on." << std::endl;
      }
      interval = decision.interval;
      continue;
    }
    if (decision.next == auth::device_next::give_up) {
      if (r.oauth_error == "expired_token" || r.oauth_error == "authorization_declined" ||
          r.oauth_error == "access_denied") {
        throw failure(decision.why + "; nothing was stored",
                      "run " + again + " again and sign in as " + address + " with the new code");
      }
      throw failure(
          auth::explain_token_failure(r, auth::oauth_step::code_exchange, address, provider.oauth));
    }
    if (lower(r.email) != lower(address)) {
      throw failure(
          "the sign-in was made by " + r.email + ", not " + address + "; nothing was stored",
          "sign in to Microsoft as " + address +
              " (use a private window, or sign out first), then run: " + again);
    }
    if (!auth::scope_granted(r.scope, config::microsoft_send_scope)) {
      throw failure(address + " did not grant " + std::string(config::microsoft_send_scope) +
                        "; nothing was stored",
                    "add the delegated permission SMTP.Send to the app registration (Entra ID > "
                    "App registrations > API permissions), then run: " +
                        again);
    }
    std::ostringstream note;
    store_token(ctx,
                {address, r.refresh_token, r.access_token, now_seconds() + r.expires_in.count()},
                note);
    std::cout << "authorized " << address << ": refresh token stored\n" << note.str() << std::flush;
    return 0;
  }
}

}  // namespace oauth_relay::ctl
