// Blocking calls of the token manager: each runs on the blocking executor,
// catches the store's errors and returns them as values for the loop.
#include "auth/token_manager_jobs.hpp"

#include "auth/consent.hpp"
#include "auth/jwt_bearer.hpp"
#include "common/secret.hpp"

namespace oauth_relay::auth::jobs {
namespace {

std::int64_t to_unix(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

refresh_answer refresh(const token_client& client, const std::string& refresh_token,
                       const std::atomic<bool>& cancel) {
  refresh_answer out;
  if (cancel) {  // queued behind a stop(): nothing to ask any more
    out.response.failure = token_failure::temporary;
    out.response.error = "cancelled";
    return out;
  }
  out.response = client.refresh(refresh_token, &cancel);
  out.expires_at = std::chrono::system_clock::now() + out.response.expires_in;
  return out;
}

refresh_answer service_token(const token_client& client, const config::service_account_key& key,
                             const std::string& mailbox, const std::atomic<bool>& cancel) {
  refresh_answer out;
  if (cancel) {
    out.response.failure = token_failure::temporary;
    out.response.error = "cancelled";
    return out;
  }
  std::string assertion;
  wipe_on_exit wipe_assertion(assertion);  // a bearer credential for an hour
  try {
    assertion =
        make_jwt_assertion(key, mailbox, mail_scope, to_unix(std::chrono::system_clock::now()));
  } catch (const jwt_signing_error& e) {
    out.response.failure = token_failure::rejected;
    out.response.error = e.what();
    out.signing_error = e.what();
    return out;
  }
  out.response = client.jwt_bearer(assertion, key.token_uri, &cancel);
  out.expires_at = std::chrono::system_clock::now() + out.response.expires_in;
  return out;
}

refresh_answer app_token(const token_client& client, const std::atomic<bool>& cancel) {
  refresh_answer out;
  if (cancel) {
    out.response.failure = token_failure::temporary;
    out.response.error = "cancelled";
    return out;
  }
  out.response = client.client_credentials(&cancel);
  out.expires_at = std::chrono::system_clock::now() + out.response.expires_in;
  return out;
}

refresh_outcome store_refresh(token_store& store, const std::string& key, std::int64_t generation,
                              const refresh_answer& answer, token_state failed_state,
                              const std::string& failed_error) {
  refresh_outcome out;
  const token_response& r = answer.response;
  try {
    if (r.ok()) {
      auto stored = store.store_access_token(key, generation, r.access_token,
                                             to_unix(answer.expires_at), r.refresh_token);
      if (stored) {
        out.generation = *stored;
        return out;
      }
    } else {
      auto failures = store.record_refresh_failure(key, failed_state, failed_error, generation);
      if (failures) {
        out.failures = *failures;
        return out;
      }
    }
    out.superseded = true;
    out.row = store.get(key);
  } catch (const token_store_error& e) {
    out.store_error = e.what();
  }
  return out;
}

rows_read read_rows(token_store& store) {
  rows_read out;
  try {
    out.rows = store.load_all();
  } catch (const token_store_error& e) {
    out.error = e.what();
  }
  return out;
}

rows_read add_and_read_rows(token_store& store,
                            const std::vector<config::account_settings>& added) {
  try {
    store.ensure_accounts(added);
  } catch (const token_store_error& e) {
    rows_read out;
    out.error = e.what();
    return out;
  }
  return read_rows(store);
}

std::string clear_access_token(token_store& store, const std::string& key,
                               const std::string& access_token) {
  try {
    store.clear_access_token(key, access_token);
    return {};
  } catch (const token_store_error& e) {
    return e.what();
  }
}

std::string record_delivery(token_store& store, const std::string& key, std::int64_t when) {
  try {
    store.record_delivery(key, when);
    return {};
  } catch (const token_store_error& e) {
    return e.what();
  }
}

}  // namespace oauth_relay::auth::jobs
