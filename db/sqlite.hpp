// The one SQLite wrapper: a connection and its prepared statements as RAII
// values; a failure is a db::error carrying SQLite's code and the file's path.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace oauth_relay::db {

// What SQLite (or opening the file) reported. what() names the database file.
class error : public std::runtime_error {
 public:
  error(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  // SQLite's extended result code (SQLITE_FULL, SQLITE_IOERR_WRITE, ...).
  int code() const noexcept { return code_; }
  // Without the extended part: SQLITE_IOERR_WRITE is SQLITE_IOERR.
  int primary_code() const noexcept { return code_ & 0xff; }

 private:
  int code_;
};

// One connection, used by one thread at a time (opened without SQLite's own
// mutex). Waits up to five seconds for a lock another process holds.
class connection {
 public:
  // `flags`: SQLITE_OPEN_READONLY, or SQLITE_OPEN_READWRITE with or without
  // SQLITE_OPEN_CREATE. Throws db::error "PATH: cannot open: WHY".
  connection(std::filesystem::path file, int flags);
  ~connection();
  connection(connection&& other) noexcept;
  connection& operator=(connection&& other) noexcept;
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Runs one or more statements that return nothing. Throws db::error.
  void exec(const char* sql);

  // Rows changed by the last INSERT, UPDATE or DELETE.
  std::int64_t changes() const;
  std::int64_t last_insert_rowid() const;

  // The error SQLite reports for `rc` on this connection: "PATH: MESSAGE".
  error failure(int rc) const;
  // An error about this database that is not SQLite's: "PATH: TEXT".
  error failure(int rc, std::string_view text) const;

  const std::filesystem::path& path() const { return path_; }
  sqlite3* handle() const { return db_; }

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
};

// A prepared statement. Bound text and blobs are not copied: they must stay
// alive until the statement is reset.
class statement {
 public:
  // `persistent`: kept for many uses (SQLite allocates it apart from its
  // lookaside memory). Throws db::error.
  statement(const connection& db, std::string_view sql, bool persistent = false);
  ~statement();
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int index, std::string_view text);
  statement& bind(int index, std::int64_t value);
  statement& bind_blob(int index, std::string_view bytes);
  statement& bind_null(int index);

  // True when a row is ready, false at the end. Anything else resets the
  // statement and throws db::error.
  bool step();
  // Runs a statement that returns no rows to its end and resets it.
  void run();
  // Ready for the next use: reset, bindings cleared.
  void reset();

  // Columns of the current row, counted from 0.
  bool is_null(int column) const;
  std::int64_t int64(int column) const;
  int int32(int column) const;
  std::optional<std::int64_t> optional_int64(int column) const;
  // Views stay valid until the next step or reset.
  std::string_view text_view(int column) const;
  std::string text(int column) const { return std::string(text_view(column)); }
  std::string_view blob(int column) const;

 private:
  [[noreturn]] void fail(int rc);
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends, however it ends, so a statement
// kept for reuse is never left half-stepped.
class reset_on_exit {
 public:
  explicit reset_on_exit(statement& s) : s_(s) {}
  ~reset_on_exit() { s_.reset(); }
  reset_on_exit(const reset_on_exit&) = delete;
  reset_on_exit& operator=(const reset_on_exit&) = delete;

 private:
  statement& s_;
};

// Statements prepared once (persistent) on first use and kept with their
// connection. Looked up by the address of the SQL text, so pass constants
// with static storage, never a temporary string's c_str().
class statement_cache {
 public:
  explicit statement_cache(connection& db) : db_(db) {}
  statement& get(const char* sql);
  connection& db() { return db_; }

 private:
  connection& db_;
  std::vector<std::pair<const char*, std::unique_ptr<statement>>> entries_;
};

}  // namespace oauth_relay::db
