// The accounts table beside the spool's messages: every write is one
// statement (atomic on its own), conditional on the token generation where a
// concurrent oauth-relayctl must win.
#include "auth/token_store.hpp"

#include "config/private_file.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

namespace oauth_relay::auth {
namespace {

constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS accounts(
  address TEXT PRIMARY KEY COLLATE NOCASE,
  refresh_token TEXT,
  access_token TEXT,
  access_expires_at INTEGER,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  last_delivery INTEGER,
  refresh_failures INTEGER NOT NULL DEFAULT 0,
  token_generation INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
);
)sql";

constexpr const char* select_columns =
    "SELECT address, refresh_token, access_token, access_expires_at, state, last_error, "
    "last_delivery, refresh_failures, token_generation, updated_at FROM accounts";

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One statement, finalized when it goes out of scope.
class statement {
 public:
  statement(sqlite3* db, const std::string& sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
      throw token_store_error(std::string("accounts: cannot prepare statement: ") +
                              sqlite3_errmsg(db));
    }
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  sqlite3_stmt* get() { return stmt_; }
  statement& bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
    return *this;
  }
  statement& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  statement& bind_null(int i) {
    sqlite3_bind_null(stmt_, i);
    return *this;
  }
  // SQLITE_ROW or SQLITE_DONE; anything else throws.
  int step() {
    const int rc = sqlite3_step(stmt_);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      throw token_store_error(std::string("accounts: ") + sqlite3_errmsg(db_));
    }
    return rc;
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

account_record read_row(sqlite3_stmt* s) {
  account_record r;
  r.address = column_text(s, 0);
  r.refresh_token = column_text(s, 1);
  r.access_token = column_text(s, 2);
  r.access_expires_at = sqlite3_column_int64(s, 3);
  r.state = parse_token_state(column_text(s, 4)).value_or(token_state::expired);
  r.last_error = column_text(s, 5);
  if (sqlite3_column_type(s, 6) != SQLITE_NULL) r.last_delivery = sqlite3_column_int64(s, 6);
  r.refresh_failures = sqlite3_column_int(s, 7);
  r.token_generation = sqlite3_column_int64(s, 8);
  r.updated_at = sqlite3_column_int64(s, 9);
  if (r.access_token.empty()) r.access_expires_at = 0;
  return r;
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

token_store::token_store(const std::filesystem::path& state_dir)
    : db_path_(state_dir / "queue.db") {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) throw token_store_error(state_dir.string() + ": cannot create: " + ec.message());
  // Refresh tokens are credentials: only the service user may read them.
  ::chmod(state_dir.c_str(), 0700);
  if (auto error = ensure_private_file(db_path_); !error.empty()) throw token_store_error(error);
  const int rc =
      sqlite3_open_v2(db_path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    throw token_store_error(db_path_.string() + ": cannot open: " + message);
  }
  sqlite3_busy_timeout(db_, 5000);
  sqlite3_extended_result_codes(db_, 1);
  try {
    // Same durability as the spool: a stored refresh token survives power loss.
    exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
    exec(schema);
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

token_store::~token_store() {
  sqlite3_close(db_);
}

void token_store::exec(const char* sql) const {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errmsg(db_);
    sqlite3_free(error);
    throw token_store_error(db_path_.string() + ": " + message);
  }
}

std::vector<account_record> token_store::load_all() const {
  std::lock_guard lock(mutex_);
  statement s(db_, std::string(select_columns) + " ORDER BY address");
  std::vector<account_record> out;
  while (s.step() == SQLITE_ROW) out.push_back(read_row(s.get()));
  return out;
}

std::optional<account_record> token_store::get(std::string_view address) const {
  std::lock_guard lock(mutex_);
  statement s(db_, std::string(select_columns) + " WHERE address = ?1");
  s.bind(1, address);
  if (s.step() != SQLITE_ROW) return std::nullopt;
  return read_row(s.get());
}

std::int64_t token_store::store_refresh_token(std::string_view address,
                                              std::string_view refresh_token) {
  std::lock_guard lock(mutex_);
  statement s(db_, R"sql(
INSERT INTO accounts(address, refresh_token, access_token, access_expires_at, state, last_error,
                     refresh_failures, token_generation, updated_at)
VALUES(?1, ?2, NULL, NULL, 'expired', '', 0, 1, ?3)
ON CONFLICT(address) DO UPDATE SET
  refresh_token = excluded.refresh_token, access_token = NULL, access_expires_at = NULL,
  state = 'expired', last_error = '', refresh_failures = 0,
  token_generation = token_generation + 1, updated_at = excluded.updated_at
RETURNING token_generation)sql");
  s.bind(1, address).bind(2, refresh_token).bind(3, now_seconds());
  if (s.step() != SQLITE_ROW) throw token_store_error("accounts: refresh token not stored");
  return sqlite3_column_int64(s.get(), 0);
}

std::optional<std::int64_t> token_store::store_access_token(std::string_view address,
                                                            std::int64_t generation,
                                                            std::string_view access_token,
                                                            std::int64_t expires_at,
                                                            std::string_view new_refresh_token) {
  std::lock_guard lock(mutex_);
  statement s(db_, R"sql(
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
  if (s.step() != SQLITE_ROW) return std::nullopt;
  const std::int64_t stored = sqlite3_column_int64(s.get(), 0);
  s.step();  // run the statement to completion so the update is committed
  return stored;
}

void token_store::clear_access_token(std::string_view address, std::string_view access_token) {
  std::lock_guard lock(mutex_);
  statement s(db_, R"sql(
UPDATE accounts SET access_token = NULL, access_expires_at = NULL,
  state = CASE WHEN state = 'valid' THEN 'expired' ELSE state END, updated_at = ?3
WHERE address = ?1 AND access_token = ?2)sql");
  s.bind(1, address).bind(2, access_token).bind(3, now_seconds());
  s.step();
}

bool token_store::set_state(std::string_view address, token_state state, std::string_view error,
                            std::optional<std::int64_t> generation) {
  std::lock_guard lock(mutex_);
  statement s(db_, R"sql(
UPDATE accounts SET state = ?2, last_error = ?3, updated_at = ?4
WHERE address = ?1 AND (?5 IS NULL OR token_generation = ?5))sql");
  s.bind(1, address).bind(2, to_string(state)).bind(3, error).bind(4, now_seconds());
  if (generation) {
    s.bind(5, *generation);
  } else {
    s.bind_null(5);
  }
  s.step();
  return sqlite3_changes(db_) > 0;
}

std::optional<int> token_store::record_refresh_failure(std::string_view address, token_state state,
                                                       std::string_view error,
                                                       std::int64_t generation) {
  std::lock_guard lock(mutex_);
  statement s(db_, R"sql(
UPDATE accounts SET state = ?2, last_error = ?3, refresh_failures = refresh_failures + 1,
  updated_at = ?4
WHERE address = ?1 AND token_generation = ?5
RETURNING refresh_failures)sql");
  s.bind(1, address).bind(2, to_string(state)).bind(3, error).bind(4, now_seconds());
  s.bind(5, generation);
  if (s.step() != SQLITE_ROW) return std::nullopt;
  const int failures = sqlite3_column_int(s.get(), 0);
  s.step();
  return failures;
}

void token_store::record_delivery(std::string_view address, std::int64_t when) {
  std::lock_guard lock(mutex_);
  statement s(db_, "UPDATE accounts SET last_delivery = ?2, updated_at = ?3 WHERE address = ?1");
  s.bind(1, address).bind(2, when).bind(3, now_seconds());
  s.step();
}

void token_store::ensure_accounts(const std::vector<config::account_settings>& accounts) {
  std::lock_guard lock(mutex_);
  exec("BEGIN IMMEDIATE");
  try {
    for (const auto& a : accounts) {
      statement s(db_, R"sql(
INSERT INTO accounts(address, state, updated_at) VALUES(?1, 'missing', ?2)
ON CONFLICT(address) DO NOTHING)sql");
      s.bind(1, a.address).bind(2, now_seconds());
      s.step();
    }
    exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

}  // namespace oauth_relay::auth
