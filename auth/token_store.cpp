// The accounts table beside the spool's messages: every write is one
// statement (atomic on its own), conditional on the token generation where a
// concurrent oauth-relayctl must win. The table itself is db/schema's.
#include "auth/token_store.hpp"

#include "common/clock.hpp"
#include "db/schema.hpp"

namespace oauth_relay::auth {
namespace {

constexpr const char* select_columns =
    "SELECT address, refresh_token, access_token, access_expires_at, state, last_error, "
    "last_delivery, refresh_failures, token_generation, updated_at FROM accounts";

account_record read_row(const db::statement& s) {
  account_record r;
  r.address = s.text(0);
  r.refresh_token = s.text(1);
  r.access_token = s.text(2);
  r.access_expires_at = s.int64(3);
  r.state = parse_token_state(s.text_view(4)).value_or(token_state::expired);
  r.last_error = s.text(5);
  r.last_delivery = s.optional_int64(6);
  r.refresh_failures = s.int32(7);
  r.token_generation = s.int64(8);
  r.updated_at = s.int64(9);
  if (r.access_token.empty()) r.access_expires_at = 0;
  return r;
}

// Runs `body`; a database failure becomes the store's own error type.
template <typename Body>
auto guarded(Body body) {
  try {
    return body();
  } catch (const db::error& e) {
    throw token_store_error(e.what());
  }
}

db::connection open(const std::filesystem::path& state_dir) {
  return guarded([&] { return db::open_queue(state_dir); });
}

}  // namespace

std::string_view to_string(token_state s) {
  switch (s) {
    case token_state::valid:
      return "valid";
    case token_state::expired:
      return "expired";
    case token_state::needs_reauth:
      return "needs_reauth";
    case token_state::refresh_failing:
      return "refresh_failing";
    case token_state::missing:
      return "missing";
  }
  return "missing";
}

std::optional<token_state> parse_token_state(std::string_view text) {
  for (auto s : {token_state::valid, token_state::expired, token_state::needs_reauth,
                 token_state::refresh_failing, token_state::missing}) {
    if (to_string(s) == text) return s;
  }
  return std::nullopt;
}

token_store::token_store(const std::filesystem::path& state_dir) : db_(open(state_dir)) {}

token_store::~token_store() = default;

std::vector<account_record> token_store::load_all() const {
  return guarded([&] {
    std::lock_guard lock(mutex_);
    db::statement s(db_, std::string(select_columns) + " ORDER BY address");
    std::vector<account_record> out;
    while (s.step()) out.push_back(read_row(s));
    return out;
  });
}

std::optional<account_record> token_store::get(std::string_view address) const {
  return guarded([&]() -> std::optional<account_record> {
    std::lock_guard lock(mutex_);
    db::statement s(db_, std::string(select_columns) + " WHERE address = ?1");
    s.bind(1, address);
    if (!s.step()) return std::nullopt;
    return read_row(s);
  });
}

std::int64_t token_store::store_refresh_token(std::string_view address,
                                              std::string_view refresh_token) {
  return guarded([&] {
    std::lock_guard lock(mutex_);
    db::statement s(db_, R"sql(
INSERT INTO accounts(address, refresh_token, access_token, access_expires_at, state, last_error,
                     refresh_failures, token_generation, updated_at)
VALUES(?1, ?2, NULL, NULL, 'expired', '', 0, 1, ?3)
ON CONFLICT(address) DO UPDATE SET
  refresh_token = excluded.refresh_token, access_token = NULL, access_expires_at = NULL,
  state = 'expired', last_error = '', refresh_failures = 0,
  token_generation = token_generation + 1, updated_at = excluded.updated_at
RETURNING token_generation)sql");
    s.bind(1, address).bind(2, refresh_token).bind(3, now_seconds());
    if (!s.step()) throw token_store_error("accounts: refresh token not stored");
    const std::int64_t generation = s.int64(0);
    s.run();  // to completion, so the write is committed
    return generation;
  });
}

std::optional<std::int64_t> token_store::store_access_token(std::string_view address,
                                                            std::int64_t generation,
                                                            std::string_view access_token,
                                                            std::int64_t expires_at,
                                                            std::string_view new_refresh_token) {
  return guarded([&]() -> std::optional<std::int64_t> {
    std::lock_guard lock(mutex_);
    db::statement s(db_, R"sql(
UPDATE accounts SET
  access_token = ?3, access_expires_at = ?4, state = 'valid', last_error = '',
  refresh_failures = 0,
  refresh_token = coalesce(?5, refresh_token),
  token_generation = token_generation + (?5 IS NOT NULL),
  updated_at = ?6
WHERE address = ?1 AND token_generation = ?2
RETURNING token_generation)sql");
    s.bind(1, address).bind(2, generation).bind(3, access_token).bind(4, expires_at);
    if (new_refresh_token.empty()) {
      s.bind_null(5);
    } else {
      s.bind(5, new_refresh_token);
    }
    s.bind(6, now_seconds());
    if (!s.step()) return std::nullopt;
    const std::int64_t stored = s.int64(0);
    s.run();  // to completion, so the update is committed
    return stored;
  });
}

void token_store::clear_access_token(std::string_view address, std::string_view access_token) {
  guarded([&] {
    std::lock_guard lock(mutex_);
    db::statement s(db_, R"sql(
UPDATE accounts SET access_token = NULL, access_expires_at = NULL,
  state = CASE WHEN state = 'valid' THEN 'expired' ELSE state END, updated_at = ?3
WHERE address = ?1 AND access_token = ?2)sql");
    s.bind(1, address).bind(2, access_token).bind(3, now_seconds());
    s.run();
  });
}

bool token_store::set_state(std::string_view address, token_state state, std::string_view error,
                            std::optional<std::int64_t> generation) {
  return guarded([&] {
    std::lock_guard lock(mutex_);
    db::statement s(db_, R"sql(
UPDATE accounts SET state = ?2, last_error = ?3, updated_at = ?4
WHERE address = ?1 AND (?5 IS NULL OR token_generation = ?5))sql");
    s.bind(1, address).bind(2, to_string(state)).bind(3, error).bind(4, now_seconds());
    if (generation) {
      s.bind(5, *generation);
    } else {
      s.bind_null(5);
    }
    s.run();
    return db_.changes() > 0;
  });
}

std::optional<int> token_store::record_refresh_failure(std::string_view address, token_state state,
                                                       std::string_view error,
                                                       std::int64_t generation) {
  return guarded([&]() -> std::optional<int> {
    std::lock_guard lock(mutex_);
    db::statement s(db_, R"sql(
UPDATE accounts SET state = ?2, last_error = ?3, refresh_failures = refresh_failures + 1,
  updated_at = ?4
WHERE address = ?1 AND token_generation = ?5
RETURNING refresh_failures)sql");
    s.bind(1, address).bind(2, to_string(state)).bind(3, error).bind(4, now_seconds());
    s.bind(5, generation);
    if (!s.step()) return std::nullopt;
    const int failures = s.int32(0);
    s.run();
    return failures;
  });
}

void token_store::record_delivery(std::string_view address, std::int64_t when) {
  guarded([&] {
    std::lock_guard lock(mutex_);
    db::statement s(db_,
                    "UPDATE accounts SET last_delivery = ?2, updated_at = ?3 WHERE address = ?1");
    s.bind(1, address).bind(2, when).bind(3, now_seconds());
    s.run();
  });
}

void token_store::ensure_accounts(const std::vector<config::account_settings>& accounts) {
  guarded([&] {
    std::lock_guard lock(mutex_);
    db_.exec("BEGIN IMMEDIATE");
    try {
      db::statement s(db_, R"sql(
INSERT INTO accounts(address, state, updated_at) VALUES(?1, 'missing', ?2)
ON CONFLICT(address) DO NOTHING)sql");
      for (const auto& a : accounts) {
        s.bind(1, a.address).bind(2, now_seconds());
        s.run();
      }
      db_.exec("COMMIT");
    } catch (...) {
      try {
        db_.exec("ROLLBACK");
      } catch (const db::error&) {
        // Nothing more to undo; the first error is the one to report.
      }
      throw;
    }
  });
}

}  // namespace oauth_relay::auth
