// The token manager's blocking work: the token endpoint request and the store
// reads and writes, as functions from arguments to a value, so they share nothing with the loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "auth/token_client.hpp"
#include "auth/token_store.hpp"
#include "config/config.hpp"

namespace oauth_relay::auth::jobs {

// The token endpoint's answer to one refresh.
struct refresh_answer {
  token_response response;
  std::chrono::system_clock::time_point expires_at{};  // when the access token lapses, if one came
  std::string signing_error;  // a service account's key could not sign; nothing was sent
};

// Asks the endpoint, unless `cancel` is set already; `cancel` set meanwhile
// abandons the request.
refresh_answer refresh(const token_client& client, const std::string& refresh_token,
                       const std::atomic<bool>& cancel);

// A service account's access token for `mailbox` (RFC 7523): the assertion
// signed with `key` here, on the pool, and posted to the key's token_uri.
refresh_answer service_token(const token_client& client, const config::service_account_key& key,
                             const std::string& mailbox, const std::atomic<bool>& cancel);

// An app-only account's access token (Microsoft's client credentials grant).
refresh_answer app_token(const token_client& client, const std::atomic<bool>& cancel);

// What a refresh's store write found.
struct refresh_outcome {
  bool superseded = false;            // a newer refresh token was stored meanwhile
  std::optional<account_record> row;  // that newer row
  std::int64_t generation = 0;        // stored generation after a success
  int failures = 0;                   // stored failure count after a failure
  std::string store_error;            // the write failed; memory is updated anyway
};

// Records the answer under the store's generation rule: it applies only while
// `generation` is still the stored one (a refresh token oauth-relayctl stored
// meanwhile wins). A failure is stored as `failed_state` with `failed_error`.
refresh_outcome store_refresh(token_store& store, const std::string& key, std::int64_t generation,
                              const refresh_answer& answer, token_state failed_state,
                              const std::string& failed_error);

// What a read of the whole accounts table found.
struct rows_read {
  std::vector<account_record> rows;
  std::string error;  // the read failed
};

rows_read read_rows(token_store& store);
// Creates the rows of `added` accounts that have none, then reads them all.
rows_read add_and_read_rows(token_store& store, const std::vector<config::account_settings>& added);

// Each returns the store's error, or "" when the write succeeded.
std::string clear_access_token(token_store& store, const std::string& key,
                               const std::string& access_token);
std::string record_delivery(token_store& store, const std::string& key, std::int64_t when);

}  // namespace oauth_relay::auth::jobs
