// Thin RAII over SQLite's C API. Errors carry the database's path because a
// daemon and its tools may have several databases open and a log line must
// say which one failed.
#include "db/sqlite.hpp"

#include <sqlite3.h>

namespace oauth_relay::db {
namespace {

// The path SQLite opened the statement's database under (absolute).
std::string path_of(sqlite3* db) {
  const char* name = db ? sqlite3_db_filename(db, "main") : nullptr;
  return name ? name : "(database)";
}

}  // namespace

connection::connection(std::filesystem::path file, int flags) : path_(std::move(file)) {
  const int rc = sqlite3_open_v2(path_.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    const int code = db_ ? sqlite3_extended_errcode(db_) : rc;
    sqlite3_close(db_);
    db_ = nullptr;
    throw error(code, path_.string() + ": cannot open: " + message);
  }
  sqlite3_busy_timeout(db_, 5000);
  sqlite3_extended_result_codes(db_, 1);
}

connection::~connection() {
  sqlite3_close(db_);
}

connection::connection(connection&& other) noexcept
    : path_(std::move(other.path_)), db_(std::exchange(other.db_, nullptr)) {}

connection& connection::operator=(connection&& other) noexcept {
  if (this != &other) {
    sqlite3_close(db_);
    path_ = std::move(other.path_);
    db_ = std::exchange(other.db_, nullptr);
  }
  return *this;
}

void connection::exec(const char* sql) {
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string text = message ? message : sqlite3_errmsg(db_);
    sqlite3_free(message);
    throw failure(sqlite3_extended_errcode(db_), text);
  }
}

std::int64_t connection::changes() const {
  return sqlite3_changes64(db_);
}

std::int64_t connection::last_insert_rowid() const {
  return sqlite3_last_insert_rowid(db_);
}

error connection::failure(int rc) const {
  return failure(rc, sqlite3_errmsg(db_));
}

error connection::failure(int rc, std::string_view text) const {
  return error(rc, path_.string() + ": " + std::string(text));
}

statement::statement(const connection& db, std::string_view sql, bool persistent) {
  const unsigned flags = persistent ? SQLITE_PREPARE_PERSISTENT : 0;
  const int rc = sqlite3_prepare_v3(db.handle(), sql.data(), static_cast<int>(sql.size()), flags,
                                    &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    throw db.failure(sqlite3_extended_errcode(db.handle()),
                     std::string("cannot prepare statement: ") + sqlite3_errmsg(db.handle()));
  }
}

statement::~statement() {
  sqlite3_finalize(stmt_);
}

statement& statement::bind(int index, std::string_view text) {
  sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  return *this;
}

statement& statement::bind(int index, std::int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

statement& statement::bind_blob(int index, std::string_view bytes) {
  sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_STATIC);
  return *this;
}

statement& statement::bind_null(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

bool statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  fail(rc);
}

void statement::run() {
  reset_on_exit reset(*this);
  while (step()) {
  }
}

void statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

void statement::fail(int rc) {
  sqlite3* db = sqlite3_db_handle(stmt_);
  // The message first: resetting may replace it.
  error e(rc, path_of(db) + ": " + sqlite3_errmsg(db));
  reset();
  throw e;
}

bool statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t statement::int64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

int statement::int32(int column) const {
  return sqlite3_column_int(stmt_, column);
}

std::optional<std::int64_t> statement::optional_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return int64(column);
}

std::string_view statement::text_view(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  if (p == nullptr) return {};
  return {reinterpret_cast<const char*>(p),
          static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

std::string_view statement::blob(int column) const {
  const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_, column));
  if (p == nullptr) return {};
  return {p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
}

statement& statement_cache::get(const char* sql) {
  for (auto& [key, st] : entries_) {
    if (key == sql) return *st;
  }
  auto& added =
      entries_.emplace_back(sql, std::make_unique<statement>(db_, sql, /*persistent=*/true));
  return *added.second;
}

}  // namespace oauth_relay::db
