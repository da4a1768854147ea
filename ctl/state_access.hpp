// How oauth-relayctl reaches the daemon's state (the token store in
// state_dir/queue.db): through the control socket while the daemon runs,
// otherwise itself as the state directory's owner, never as root.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include "ctl/common.hpp"

namespace oauth_relay::ctl {

// Before oauth-relayctl opens anything in state_dir itself. Run as root, it
// becomes the directory's owner for the rest of the process (supplementary
// groups dropped, then setresgid and setresuid to the owner's ids): whatever
// the service user planted there (a symbolic link to /etc/shadow in place of
// queue.db-wal) is then opened with no more rights than the service user's.
// Root stays root only for a directory root owns. Refused with a failure:
// as root, a state_dir that is a symbolic link or does not exist; as anyone
// else, a state_dir owned by another user. Idempotent.
void act_as_state_owner(const context& ctx);

// A refresh token to store for `address`, optionally with an access token
// obtained with it (which saves the daemon a refresh).
struct token_to_store {
  std::string address;
  std::string refresh_token;  // secret
  std::string access_token;   // secret; empty when none
  std::int64_t access_expires_at = 0;
};

// Stores the token: through a running daemon (POST /accounts/import on the
// control socket), which reloads the account at once; otherwise in the
// token store as its owner. Then says on `out` what the daemon will do.
// Throws failure.
void store_token(const context& ctx, const token_to_store& token, std::ostream& out);

// Fails now, before a consent that would be wasted, when the token could not
// be stored: the control socket refuses this user, or (no daemon) the store
// cannot be opened as its owner. Drops root as act_as_state_owner does when
// the daemon is not running.
void check_token_can_be_stored(const context& ctx);

// The `accounts --json` document: from a running daemon (GET /accounts on
// the control socket), otherwise from the token store as its owner.
std::string accounts_document(const context& ctx);

}  // namespace oauth_relay::ctl
