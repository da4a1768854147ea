// The migrations, numbered: entry N brings a database from version N-1 to N.
// Every database walks the same list, a new one from version 0, so a fresh
// file and a migrated one cannot drift apart. A new version is one more entry.
#include "db/schema.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <string>
#include <system_error>

#include "config/log.hpp"
#include "config/private_file.hpp"

namespace oauth_relay::db {
namespace {

bool has_column(connection& db, const char* table, std::string_view column) {
  statement info(db, std::string("SELECT name FROM pragma_table_info('") + table + "')");
  while (info.step()) {
    if (info.text_view(0) == column) return true;
  }
  return false;
}

// 1: the spool's first tables; the content was kept inside the message row.
// IF NOT EXISTS: a crash of the version that created these tables outside a
// transaction could leave them behind at version 0.
void create_spool_tables(connection& db) {
  db.exec(R"sql(
CREATE TABLE IF NOT EXISTS messages(
  id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,
  sender TEXT NOT NULL,
  account TEXT NOT NULL,
  body_type INTEGER NOT NULL,
  smtputf8 INTEGER NOT NULL,
  dsn_ret INTEGER NOT NULL,
  envid TEXT NOT NULL,
  size INTEGER NOT NULL,
  content BLOB,
  content_file TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS recipients(
  message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  address TEXT NOT NULL,
  notify INTEGER NOT NULL,
  orcpt TEXT NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,
  last_reply TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(message_id, position)
) WITHOUT ROWID;
)sql");
}

// 2: the content in a table of its own. Inside the message row, every change
// of a message's schedule rewrote its content and every scan of the queue
// read it. The indexes serve the due query and the per-account updates.
void move_content_out(connection& db) {
  db.exec("CREATE TABLE IF NOT EXISTS contents(id INTEGER PRIMARY KEY, data BLOB NOT NULL);");
  if (has_column(db, "messages", "content")) {
    if (!has_column(db, "messages", "content_id"))
      db.exec("ALTER TABLE messages ADD COLUMN content_id INTEGER;");
    db.exec(R"sql(
INSERT INTO contents(id, data) SELECT rowid, content FROM messages WHERE content IS NOT NULL;
UPDATE messages SET content_id = rowid WHERE content IS NOT NULL;
ALTER TABLE messages DROP COLUMN content;
)sql");
  }
  db.exec(R"sql(
CREATE INDEX IF NOT EXISTS messages_due ON messages(next_attempt_ms);
CREATE INDEX IF NOT EXISTS messages_account_due ON messages(account COLLATE NOCASE, next_attempt_ms);
)sql");
}

// 3: the accounts table under version control. The token store used to
// create it by itself, so a database may have it already at any version.
void add_accounts(connection& db) {
  db.exec(R"sql(
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
)sql");
}

// 4: the tokens sealed (auth/token_cipher.hpp): the token columns hold
// AES-256-GCM BLOBs, and token_key one value sealed under the key, so a wrong
// key is found at start before any account is read. No key is needed here:
// the rows keep their plain text values (typeof 'text') and the token store
// seals them the first time it opens the database with the key, whichever
// program migrated it. secure_delete (open_queue) zeroes the old table's
// pages as it is dropped.
void seal_tokens(connection& db) {
  db.exec(R"sql(
CREATE TABLE accounts_v4(
  address TEXT PRIMARY KEY COLLATE NOCASE,
  refresh_token BLOB,
  access_token BLOB,
  access_expires_at INTEGER,
  state TEXT NOT NULL,
  last_error TEXT NOT NULL DEFAULT '',
  last_delivery INTEGER,
  refresh_failures INTEGER NOT NULL DEFAULT 0,
  token_generation INTEGER NOT NULL DEFAULT 0,
  updated_at INTEGER NOT NULL
);
INSERT INTO accounts_v4(address, refresh_token, access_token, access_expires_at, state, last_error,
                        last_delivery, refresh_failures, token_generation, updated_at)
  SELECT address, refresh_token, access_token, access_expires_at, state, last_error,
         last_delivery, refresh_failures, token_generation, updated_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_v4 RENAME TO accounts;
CREATE TABLE token_key(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  key_check BLOB NOT NULL,
  created_at INTEGER NOT NULL
);
)sql");
}

// 5: whether a message's sender was already sent its delay warning
// (queue.delay_warning): at most one per message.
void add_delay_warned(connection& db) {
  if (!has_column(db, "messages", "delay_warned"))
    db.exec("ALTER TABLE messages ADD COLUMN delay_warned INTEGER NOT NULL DEFAULT 0;");
}

// 6: whether a message's content has 8-bit octets (BODY=8BITMIME upstream),
// noted as it arrives so delivery need not read the content first. NULL on
// rows stored before: not known, found by reading the content.
void add_eight_bit(connection& db) {
  if (!has_column(db, "messages", "eight_bit"))
    db.exec("ALTER TABLE messages ADD COLUMN eight_bit INTEGER;");
}

// 7: each account's sending record and holds (relay/delivery/sending_limits):
// one row per delivered message for the rolling 24 hours of Gmail's quota
// and limits: (pruned as the window moves on), and the hold a quota or
// rate answer put on an account, so a restart neither resets the count nor
// forgets that Gmail said stop.
void add_sending_record(connection& db) {
  db.exec(R"sql(
CREATE TABLE IF NOT EXISTS sent_log(
  account TEXT NOT NULL COLLATE NOCASE,
  sent_at_ms INTEGER NOT NULL,
  recipients INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_log_time ON sent_log(sent_at_ms);
CREATE TABLE IF NOT EXISTS account_holds(
  account TEXT PRIMARY KEY COLLATE NOCASE,
  state TEXT NOT NULL,
  since_ms INTEGER NOT NULL,
  resumes_at_ms INTEGER NOT NULL,
  throttles INTEGER NOT NULL,
  reason TEXT NOT NULL
);
)sql");
}

// 8: when each account's refresh token was stored by authorize or import
// (unix seconds; NULL for rows stored before): a refusal about seven days
// later is the consent screen's Testing status, sooner it was revoked.
void add_authorized_at(connection& db) {
  if (!has_column(db, "accounts", "authorized_at"))
    db.exec("ALTER TABLE accounts ADD COLUMN authorized_at INTEGER;");
}

// 9: the queue's figures kept, not recounted (GET /health and /metrics at a
// million queued messages): queue_counts holds the number of messages and of
// deferred ones (attempts > 0), kept by triggers in the transaction of each
// insert, delete or attempt count change, so they are right after any crash
// and whoever writes the rows; counted once here. messages_age makes the
// oldest arrival an index seek, not a scan.
void add_queue_counts(connection& db) {
  db.exec(R"sql(
CREATE TABLE IF NOT EXISTS queue_counts(
  id INTEGER PRIMARY KEY CHECK (id = 1),
  messages INTEGER NOT NULL,
  deferred INTEGER NOT NULL
);
INSERT OR REPLACE INTO queue_counts(id, messages, deferred)
  SELECT 1, count(*), count(CASE WHEN attempts > 0 THEN 1 END) FROM messages;
CREATE TRIGGER IF NOT EXISTS queue_counts_insert AFTER INSERT ON messages BEGIN
  UPDATE queue_counts SET messages = messages + 1, deferred = deferred + (NEW.attempts > 0)
    WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_delete AFTER DELETE ON messages BEGIN
  UPDATE queue_counts SET messages = messages - 1, deferred = deferred - (OLD.attempts > 0)
    WHERE id = 1;
END;
CREATE TRIGGER IF NOT EXISTS queue_counts_attempts AFTER UPDATE OF attempts ON messages
  WHEN (OLD.attempts > 0) != (NEW.attempts > 0) BEGIN
  UPDATE queue_counts SET deferred = deferred + (NEW.attempts > 0) - (OLD.attempts > 0)
    WHERE id = 1;
END;
CREATE INDEX IF NOT EXISTS messages_age ON messages(received_at);
)sql");
}

struct migration {
  int version;  // the version the database has afterwards
  void (*apply)(connection&);
};

constexpr std::array migrations{
    migration{1, create_spool_tables},  // messages, recipients
    migration{2, move_content_out},     // contents
    migration{3, add_accounts},         // accounts
    migration{4, seal_tokens},          // accounts' tokens sealed, token_key
    migration{5, add_delay_warned},     // messages.delay_warned
    migration{6, add_eight_bit},        // messages.eight_bit
    migration{7, add_sending_record},   // sent_log, account_holds
    migration{8, add_authorized_at},    // accounts.authorized_at
    migration{9, add_queue_counts},     // queue_counts and its triggers, messages_age
};
static_assert(migrations.size() == queue_schema_version,
              "queue_schema_version is the last migration's number");

constexpr int last_version() {
  int expected = 0;
  for (const auto& m : migrations) {
    if (m.version != ++expected) return -1;
  }
  return expected;
}
static_assert(last_version() == queue_schema_version, "migrations are numbered 1, 2, 3, ...");

void refuse_newer(const connection& db, int version) {
  if (version <= queue_schema_version) return;
  throw db.failure(SQLITE_ERROR, "written by a newer oauth-relay (schema version " +
                                     std::to_string(version) +
                                     "); refusing to start so no queued mail is lost");
}

void migrate(connection& db) {
  const int seen = schema_version(db);
  refuse_newer(db, seen);
  if (seen == queue_schema_version) return;
  // Another process may be migrating too: the write lock decides who does
  // it, and the version is read again under it.
  db.exec("BEGIN IMMEDIATE");
  int from = 0;
  try {
    from = schema_version(db);
    refuse_newer(db, from);
    for (const auto& m : migrations) {
      if (m.version > from) m.apply(db);
    }
    db.exec(("PRAGMA user_version = " + std::to_string(queue_schema_version)).c_str());
    db.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  if (from == queue_schema_version) return;  // the other process was first
  log::info(from == 0 ? "queue_schema_created" : "queue_schema_migrated")
      .kv("file", db.path().string())
      .kv("from", from)
      .kv("to", queue_schema_version);
}

// SQLite opens queue.db-wal and queue.db-shm with O_NOFOLLOW and would fail
// on a link with "unable to open database file" (or quietly remove a stale
// WAL link); this says which file and why first.
void refuse_linked_companions(const std::filesystem::path& file) {
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string companion = file.string() + suffix;
    struct stat st {};
    if (::lstat(companion.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      throw error(SQLITE_CANTOPEN,
                  companion + ": is a symbolic link; refusing to follow it (remove it)");
    }
  }
}

}  // namespace

void check_integrity(connection& db) {
  statement check(db, "PRAGMA quick_check");
  if (check.step() && check.text_view(0) == "ok") return;
  throw db.failure(SQLITE_CORRUPT,
                   "the database is damaged (PRAGMA quick_check failed); refusing to start so no "
                   "queued mail is lost. Move it aside and recover it with `sqlite3 queue.db "
                   ".recover`");
}

int schema_version(connection& db) {
  statement version(db, "PRAGMA user_version");
  return version.step() ? version.int32(0) : 0;
}

connection open_queue(const std::filesystem::path& state_dir, open_options options) {
  const auto file = state_dir / "queue.db";
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  if (ec) throw error(SQLITE_CANTOPEN, state_dir.string() + ": cannot create: " + ec.message());
  // Messages and refresh tokens are private: only the service user may read
  // them. fchmod on the directory itself, never a path that could be swapped.
  if (const int dir = ::open(state_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dir >= 0) {
    ::fchmod(dir, 0700);
    ::close(dir);
  }
  const bool existed = std::filesystem::exists(file, ec);
  if (auto problem = ensure_private_file(file); !problem.empty())
    throw error(SQLITE_CANTOPEN, problem);
  refuse_linked_companions(file);
  // NOFOLLOW: a queue.db that is a symbolic link is refused (SQLite opens
  // the -wal and -shm files with O_NOFOLLOW too).
  connection db(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW);
  // WAL + synchronous=FULL: each COMMIT is synced (a 250 or a stored token
  // survives power loss) and readers never block the writer. secure_delete:
  // what a write replaces or deletes (a token, a delivered message) is
  // overwritten with zeros, not left in free space for a copy of the file.
  db.exec(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
      "PRAGMA secure_delete=ON;");
  if (existed && options.check_integrity) check_integrity(db);
  migrate(db);
  return db;
}

connection open_queue_read_only(const std::filesystem::path& state_dir) {
  refuse_linked_companions(state_dir / "queue.db");
  return connection(state_dir / "queue.db", SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW);
}

}  // namespace oauth_relay::db
