// Accounts and their OAuth tokens, kept sealed (auth/token_cipher) in the
// spool's SQLite database (state_dir/queue.db) so oauth-relayctl and the
// daemon share one source of truth.
#pragma once

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "auth/token_cipher.hpp"
#include "auth/token_state.hpp"
#include "common/secret.hpp"
#include "config/config.hpp"
#include "db/sqlite.hpp"

namespace oauth_relay::auth {

// The database cannot be opened or written.
class token_store_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct account_record {
  std::string address;
  secret_string refresh_token;         // never logged; empty when none
  secret_string access_token;          // never logged; empty when none
  std::int64_t access_expires_at = 0;  // unix seconds; 0 when there is no access token
  token_state state = token_state::missing;
  std::string last_error;
  std::optional<std::int64_t> last_delivery;  // unix seconds
  int refresh_failures = 0;
  std::int64_t token_generation = 0;  // bumped whenever a new refresh token is stored
  std::int64_t updated_at = 0;        // unix seconds
  // When authorize or import stored the refresh token (unix seconds; not
  // moved by a rotation); nothing for rows stored before schema version 8.
  std::optional<std::int64_t> authorized_at;
};

// Thread-safe: one connection behind a mutex. Other processes (oauth-relayctl)
// write the same database; SQLite's locking and busy timeout arbitrate.
//
// Tokens are sealed with `cipher` on the way in and opened on the way out; a
// stored token that does not open (altered, or copied from another row) reads
// as no token, with the account in state `needs_reauth` and an error saying so.
class token_store {
 public:
  // Opens or creates state_dir (0700) and state_dir/queue.db (0600), its
  // schema brought up to date (db/schema.hpp). The database's key check must
  // match `cipher`'s key (a database without one gets it); tokens still in
  // plain text (schema version 3 and before) are then sealed, and the WAL
  // truncated so no plain copy stays in it. Throws token_key_error
  // (auth/token_key.hpp) for a key that is not the database's, before
  // anything is changed, and token_store_error when the database fails.
  token_store(const std::filesystem::path& state_dir, token_cipher cipher);
  ~token_store();
  token_store(const token_store&) = delete;
  token_store& operator=(const token_store&) = delete;

  std::vector<account_record> load_all() const;
  std::optional<account_record> get(std::string_view address) const;

  // A refresh token from `oauth-relayctl authorize/import`: creates the account
  // when needed, drops the access token, clears errors and failures, sets
  // state `expired` so the daemon refreshes, notes the time as authorized_at,
  // and bumps the generation, which the running daemon polls for. Returns the
  // new generation.
  std::int64_t store_refresh_token(std::string_view address, std::string_view refresh_token);

  // A successful refresh. Applies only while the account's generation is
  // still `generation` (a token stored meanwhile by oauth-relayctl wins);
  // state becomes `valid`, errors and failures are cleared. A non-empty
  // `new_refresh_token` (the endpoint rotated it) replaces the stored one and
  // bumps the generation. Returns the generation now stored, or nothing when
  // the update did not apply.
  std::optional<std::int64_t> store_access_token(std::string_view address, std::int64_t generation,
                                                 std::string_view access_token,
                                                 std::int64_t expires_at,
                                                 std::string_view new_refresh_token = {});

  // Forgets the access token (state `expired`) if it is still `access_token`:
  // the update is conditional on the sealed value read, so a token stored
  // meanwhile by another process stays.
  void clear_access_token(std::string_view address, std::string_view access_token);

  // Sets state and last error; with `generation`, only while it is unchanged.
  // Returns whether a row was updated.
  bool set_state(std::string_view address, token_state state, std::string_view error,
                 std::optional<std::int64_t> generation = std::nullopt);

  // A failed refresh: state, error, and refresh_failures + 1, under the same
  // generation rule. Returns the new failure count, or nothing when the
  // update did not apply.
  std::optional<int> record_refresh_failure(std::string_view address, token_state state,
                                            std::string_view error, std::int64_t generation);

  void record_delivery(std::string_view address, std::int64_t when);

  // Adds configured accounts that have no row yet, in state `missing`.
  void ensure_accounts(const std::vector<config::account_settings>& accounts);

 private:
  void adopt_key();
  account_record read_row(const db::statement& s) const;

  mutable db::connection db_;
  token_cipher cipher_;
  mutable std::mutex mutex_;
};

// The key check state_dir/queue.db holds (auth/token_cipher.hpp), read
// without writing anything: nothing when there is no database or nothing was
// ever sealed in it. Throws token_store_error when it cannot be read.
std::optional<std::string> stored_key_check(const std::filesystem::path& state_dir);

}  // namespace oauth_relay::auth
