// The accounts table beside the spool's messages: every write is one
// statement (atomic on its own), conditional on the token generation where a
// concurrent oauth-relayctl must win. Tokens go in sealed and come out
// opened here, nowhere else. The tables themselves are db/schema's.
#include "auth/token_store.hpp"

#include <sqlite3.h>

#include "auth/token_key.hpp"
#include "common/clock.hpp"
#include "common/secret.hpp"
#include "config/log.hpp"
#include "db/schema.hpp"

namespace oauth_relay::auth {
namespace {

constexpr const char* select_columns =
    "SELECT address, refresh_token, access_token, access_expires_at, state, last_error, "
    "last_delivery, refresh_failures, token_generation, updated_at, typeof(refresh_token), "
    "typeof(access_token), authorized_at FROM accounts";

// Runs `body`; a database failure becomes the store's own error type.
template <typename Body>
auto guarded(Body body) {
  try {
    return body();
  } catch (const db::error& e) {
    throw token_store_error(e.what());
  } catch (const token_cipher_error& e) {
    throw token_store_error(e.what());
  }
}

db::connection open(const std::filesystem::path& state_dir) {
  return guarded([&] { return db::open_queue(state_dir); });
}

// Runs `body` in a BEGIN IMMEDIATE transaction: committed when it returns,
// rolled back when it throws.
template <typename Body>
void in_transaction(db::connection& db, Body body) {
  db.exec("BEGIN IMMEDIATE");
  try {
    body();
    db.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::string undecryptable(std::string_view address, std::string_view what) {
  return "the stored " + std::string(what) + " of " + std::string(address) +
         " cannot be decrypted (altered, or copied from another row or database); authorize it "
         "again: oauth-relayctl authorize " +
         std::string(address);
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

token_store::token_store(const std::filesystem::path& state_dir, token_cipher cipher)
    : db_(open(state_dir)), cipher_(std::move(cipher)) {
  adopt_key();
}

token_store::~token_store() = default;

void token_store::adopt_key() {
  int sealed = 0;
  guarded([&] {
    in_transaction(db_, [&] {
      db::statement check(db_, "SELECT key_check FROM token_key WHERE id = 1");
      if (check.step()) {
        if (!cipher_.matches_key_check(check.blob(0))) throw key_mismatch(cipher_, db_.path());
      } else {
        const std::string value = cipher_.make_key_check();
        db::statement add(db_,
                          "INSERT INTO token_key(id, key_check, created_at) VALUES(1, ?1, ?2)");
        add.bind_blob(1, value).bind(2, now_seconds());
        add.run();
      }
      // Plain text from schema version 3 and before: sealed in place. Read
      // first, then written, so the scan never meets its own updates.
      struct plain_row {
        std::string address;
        std::optional<std::string> refresh, access;
        ~plain_row() {
          if (refresh) wipe(*refresh);
          if (access) wipe(*access);
        }
      };
      std::vector<plain_row> rows;
      {
        db::statement plain(db_, R"sql(
SELECT address, refresh_token, access_token, typeof(refresh_token), typeof(access_token)
FROM accounts WHERE typeof(refresh_token) = 'text' OR typeof(access_token) = 'text')sql");
        while (plain.step()) {
          auto& row = rows.emplace_back();
          row.address = plain.text(0);
          if (plain.text_view(3) == "text") row.refresh = plain.text(1);
          if (plain.text_view(4) == "text") row.access = plain.text(2);
        }
      }
      // A column not in plain text (NULL, or sealed already) stays as it is.
      db::statement seal(db_, R"sql(
UPDATE accounts SET refresh_token = coalesce(?2, refresh_token),
  access_token = coalesce(?3, access_token)
WHERE address = ?1)sql");
      for (const auto& row : rows) {
        const std::string refresh =
            row.refresh ? cipher_.seal(row.address, token_field::refresh, *row.refresh) : "";
        const std::string access =
            row.access ? cipher_.seal(row.address, token_field::access, *row.access) : "";
        seal.bind(1, row.address);
        if (row.refresh) {
          seal.bind_blob(2, refresh);
        } else {
          seal.bind_null(2);
        }
        if (row.access) {
          seal.bind_blob(3, access);
        } else {
          seal.bind_null(3);
        }
        seal.run();
      }
      sealed = static_cast<int>(rows.size());
    });
  });
  if (sealed == 0) return;
  // The plain pages are zeroed in the database (secure_delete) but still
  // whole in the WAL until a checkpoint copies the new ones over and the WAL
  // is emptied.
  const int rc = sqlite3_wal_checkpoint_v2(db_.handle(), nullptr, SQLITE_CHECKPOINT_TRUNCATE,
                                           nullptr, nullptr);
  auto line = log::notice("tokens_sealed");
  line.kv("file", db_.path().string()).kv("accounts", sealed);
  if (rc != SQLITE_OK) {
    line.kv("wal", std::string("not truncated: ") + sqlite3_errstr(rc) +
                       " (the old pages are overwritten as the WAL is reused)");
  }
}

account_record token_store::read_row(const db::statement& s) const {
  account_record r;
  r.address = s.text(0);
  r.access_expires_at = s.int64(3);
  r.state = parse_token_state(s.text_view(4)).value_or(token_state::expired);
  r.last_error = s.text(5);
  r.last_delivery = s.optional_int64(6);
  r.refresh_failures = s.int32(7);
  r.token_generation = s.int64(8);
  r.updated_at = s.int64(9);
  r.authorized_at = s.optional_int64(12);
  // Only sealed values (BLOBs) are tokens: anything else was written past
  // the cipher and is treated as altered.
  if (!s.is_null(1)) {
    auto token = s.text_view(10) == "blob"
                     ? cipher_.open(r.address, token_field::refresh, s.blob(1))
                     : std::nullopt;
    if (token) {
      r.refresh_token = std::move(*token);
    } else {
      r.state = token_state::needs_reauth;
      r.last_error = undecryptable(r.address, "refresh token");
    }
  }
  if (!s.is_null(2)) {
    auto token = s.text_view(11) == "blob" ? cipher_.open(r.address, token_field::access, s.blob(2))
                                           : std::nullopt;
    if (token) {
      r.access_token = std::move(*token);
    } else if (r.state == token_state::valid) {
      // A refresh gets another; nothing is lost.
      r.state = token_state::expired;
    }
  }
  if (r.access_token.empty()) r.access_expires_at = 0;
  return r;
}

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
                     refresh_failures, token_generation, updated_at, authorized_at)
VALUES(?1, ?2, NULL, NULL, 'expired', '', 0, 1, ?3, ?3)
ON CONFLICT(address) DO UPDATE SET
  refresh_token = excluded.refresh_token, access_token = NULL, access_expires_at = NULL,
  state = 'expired', last_error = '', refresh_failures = 0,
  token_generation = token_generation + 1, updated_at = excluded.updated_at,
  authorized_at = excluded.authorized_at
RETURNING token_generation)sql");
    const std::string sealed = cipher_.seal(address, token_field::refresh, refresh_token);
    s.bind(1, address).bind_blob(2, sealed).bind(3, now_seconds());
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
    const std::string sealed_access = cipher_.seal(address, token_field::access, access_token);
    const std::string sealed_refresh =
        new_refresh_token.empty() ? std::string()
                                  : cipher_.seal(address, token_field::refresh, new_refresh_token);
    s.bind(1, address).bind(2, generation).bind_blob(3, sealed_access).bind(4, expires_at);
    if (new_refresh_token.empty()) {
      s.bind_null(5);
    } else {
      s.bind_blob(5, sealed_refresh);
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
    // Each seal has its own nonce: the stored value is found by opening it.
    db::statement read(db_, "SELECT address, access_token FROM accounts WHERE address = ?1");
    read.bind(1, address);
    if (!read.step() || read.is_null(1)) return;
    const std::string sealed(read.blob(1));
    auto stored = cipher_.open(read.text_view(0), token_field::access, sealed);
    const bool same = stored && *stored == access_token;
    if (stored) wipe(*stored);
    read.reset();
    if (!same) return;
    db::statement s(db_, R"sql(
UPDATE accounts SET access_token = NULL, access_expires_at = NULL,
  state = CASE WHEN state = 'valid' THEN 'expired' ELSE state END, updated_at = ?3
WHERE address = ?1 AND access_token = ?2)sql");
    s.bind(1, address).bind_blob(2, sealed).bind(3, now_seconds());
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

std::optional<std::string> stored_key_check(const std::filesystem::path& state_dir) {
  std::error_code ec;
  if (!std::filesystem::exists(state_dir / "queue.db", ec)) return std::nullopt;
  return guarded([&]() -> std::optional<std::string> {
    auto db = db::open_queue_read_only(state_dir);
    db::statement table(
        db, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'token_key'");
    if (!table.step() || table.int64(0) == 0) return std::nullopt;
    db::statement check(db, "SELECT key_check FROM token_key WHERE id = 1");
    if (!check.step()) return std::nullopt;
    return std::string(check.blob(0));
  });
}

}  // namespace oauth_relay::auth
