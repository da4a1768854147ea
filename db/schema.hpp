// queue.db's schema: every table (messages, recipients, contents, accounts,
// token_key, sent_log, account_holds, queue_counts), its version and the migrations from each
// earlier one. Nothing else creates tables.
#pragma once

#include <filesystem>

#include "db/sqlite.hpp"

namespace oauth_relay::db {

// PRAGMA user_version of a database this code wrote. The history is the
// numbered list of migrations in schema.cpp.
inline constexpr int queue_schema_version = 9;

struct open_options {
  // PRAGMA quick_check on an existing file first: the daemon refuses to start
  // on a damaged queue rather than lose the mail in it.
  bool check_integrity = false;
};

// Opens state_dir/queue.db for writing, creating state_dir (0700) and the
// file (0600) when missing: WAL, synchronous=FULL, foreign keys and
// secure_delete on, the schema brought to queue_schema_version in one BEGIN
// IMMEDIATE transaction
// (the daemon and oauth-relayctl may open it at the same time). A file
// written by a newer version is refused and left as it is. No symbolic link
// is followed: queue.db, queue.db-wal or queue.db-shm being one is refused
// with the file's name. Throws db::error naming the file.
connection open_queue(const std::filesystem::path& state_dir, open_options options = {});

// Opens an existing state_dir/queue.db for reading only. Never creates or
// migrates anything. Throws db::error naming the file.
connection open_queue_read_only(const std::filesystem::path& state_dir);

// PRAGMA user_version.
int schema_version(connection& db);

// PRAGMA quick_check: reads every page, so its time grows with the file.
// Throws db::error (SQLITE_CORRUPT) saying the database is damaged and how
// to recover it.
void check_integrity(connection& db);

}  // namespace oauth_relay::db
