// queue.db's migrations, one path each: a new file, version 1 with the
// content inside messages, version 2 with and without the token store's
// accounts table, a file the token store created alone, version 3's plain
// text tokens, and a newer version.
#include "db/schema.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace oauth_relay::db {
namespace {

// The version-1 tables, as the first spool created them.
constexpr const char* version_1 = R"sql(
CREATE TABLE messages(id TEXT PRIMARY KEY, received_at INTEGER NOT NULL, sender TEXT NOT NULL,
  account TEXT NOT NULL, body_type INTEGER NOT NULL, smtputf8 INTEGER NOT NULL,
  dsn_ret INTEGER NOT NULL, envid TEXT NOT NULL, size INTEGER NOT NULL, content BLOB,
  content_file TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE recipients(message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position INTEGER NOT NULL, address TEXT NOT NULL, notify INTEGER NOT NULL,
  orcpt TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
  last_reply TEXT NOT NULL DEFAULT '', PRIMARY KEY(message_id, position)) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql";

// The version-2 tables, as the spool before version 3 created them.
constexpr const char* version_2 = R"sql(
CREATE TABLE messages(id TEXT PRIMARY KEY, received_at INTEGER NOT NULL, sender TEXT NOT NULL,
  account TEXT NOT NULL, body_type INTEGER NOT NULL, smtputf8 INTEGER NOT NULL,
  dsn_ret INTEGER NOT NULL, envid TEXT NOT NULL, size INTEGER NOT NULL, content_id INTEGER,
  content_file TEXT, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT '');
CREATE TABLE recipients(message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position INTEGER NOT NULL, address TEXT NOT NULL, notify INTEGER NOT NULL,
  orcpt TEXT NOT NULL, status INTEGER NOT NULL DEFAULT 0,
  last_reply TEXT NOT NULL DEFAULT '', PRIMARY KEY(message_id, position)) WITHOUT ROWID;
CREATE TABLE contents(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE INDEX messages_due ON messages(next_attempt_ms);
CREATE INDEX messages_account_due ON messages(account COLLATE NOCASE, next_attempt_ms);
INSERT INTO contents VALUES(7, CAST('queued mail' AS BLOB));
INSERT INTO messages VALUES('m2', 1, 'a@example.com', 'a@example.com', 0, 0, 0, '', 11, 7, NULL,
  0, 5, '');
INSERT INTO recipients VALUES('m2', 0, 'b@example.org', 0, '', 0, '');
PRAGMA user_version = 2;
)sql";

// The accounts table as the token store created it by itself.
constexpr const char* token_store_accounts = R"sql(
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
INSERT INTO accounts(address, refresh_token, state, token_generation, updated_at)
  VALUES('alice@example.com', '1//kept', 'expired', 4, 1700000000);
)sql";

class schema_test : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("schema-test-" + std::to_string(std::random_device{}()));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path file() const { return dir_ / "queue.db"; }

  // Writes a database the way an older program did, with its own connection.
  void prepare(std::initializer_list<const char*> scripts) {
    std::filesystem::create_directories(dir_);
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(file().c_str(), &db), SQLITE_OK);
    for (const char* sql : scripts) {
      char* error = nullptr;
      ASSERT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, &error), SQLITE_OK) << error;
    }
    sqlite3_close(db);
  }

  // The first column of each row of a query.
  std::vector<std::string> rows(const char* sql) {
    connection db(file(), SQLITE_OPEN_READONLY);
    statement st(db, sql);
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.text(0));
    return out;
  }

  std::int64_t value(const char* sql) {
    connection db(file(), SQLITE_OPEN_READONLY);
    statement st(db, sql);
    EXPECT_TRUE(st.step()) << sql;
    return st.int64(0);
  }

  // What a schema is made of: each table's columns and each index, sorted.
  std::vector<std::string> shape() {
    return rows(
        "SELECT m.type || ' ' || m.name || coalesce(' ' || ("
        "  SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_table_info(m.name) "
        "  ORDER BY name)), '') FROM sqlite_master m WHERE m.name NOT LIKE 'sqlite_%' "
        "ORDER BY m.type, m.name");
  }

  std::filesystem::path dir_;
};

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

const std::vector<std::string> current_shape = {
    "index messages_account_due",
    "index messages_age",
    "index messages_due",
    "index sent_log_time",
    "table account_holds account,reason,resumes_at_ms,since_ms,state,throttles",
    "table accounts access_expires_at,access_token,address,authorized_at,last_delivery,last_error,"
    "refresh_failures,refresh_token,state,token_generation,updated_at",
    "table contents data,id",
    "table messages account,attempts,body_type,content_file,content_id,delay_warned,dsn_ret,"
    "eight_bit,envid,id,last_error,next_attempt_ms,received_at,sender,size,smtputf8",
    "table queue_counts deferred,id,messages",
    "table recipients address,last_reply,message_id,notify,orcpt,position,status",
    "table sent_log account,recipients,sent_at_ms",
    "table token_key created_at,id,key_check",
    "trigger queue_counts_attempts",
    "trigger queue_counts_delete",
    "trigger queue_counts_insert",
};

TEST_F(schema_test, a_new_database_gets_every_table_privately_in_wal_mode) {
  auto db = open_queue(dir_);
  EXPECT_EQ(schema_version(db), queue_schema_version);
  EXPECT_EQ(queue_schema_version, 9);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(mode_of(dir_), 0700u);
  EXPECT_EQ(mode_of(file()), 0600u);
  statement mode(db, "PRAGMA journal_mode");
  ASSERT_TRUE(mode.step());
  EXPECT_EQ(mode.text(0), "wal");
  statement keys(db, "PRAGMA foreign_keys");
  ASSERT_TRUE(keys.step());
  EXPECT_EQ(keys.int64(0), 1);
  statement secure_delete(db, "PRAGMA secure_delete");
  ASSERT_TRUE(secure_delete.step());
  EXPECT_EQ(secure_delete.int64(0), 1);
  EXPECT_EQ(rows("SELECT type FROM pragma_table_info('accounts') WHERE name LIKE '%_token'"),
            (std::vector<std::string>{"BLOB", "BLOB"}));
}

TEST_F(schema_test, version_1_moves_the_content_out_of_the_message_rows) {
  prepare({version_1, R"sql(
    INSERT INTO messages VALUES('m1', 1, 'a@example.com', 'a@example.com', 0, 0, 0, '', 8,
      CAST('old mail' AS BLOB), NULL, 2, 5, 'x');
    INSERT INTO messages VALUES('big', 2, 'a@example.com', 'a@example.com', 0, 0, 0, '', 9,
      NULL, 'big', 0, 5, '');
    INSERT INTO recipients VALUES('m1', 0, 'b@example.org', 0, '', 0, '');
  )sql"});
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(rows("SELECT CAST(c.data AS TEXT) FROM messages m JOIN contents c "
                 "ON c.id = m.content_id WHERE m.id = 'm1'"),
            std::vector<std::string>{"old mail"});
  EXPECT_EQ(rows("SELECT content_file FROM messages WHERE id = 'big' AND content_id IS NULL"),
            std::vector<std::string>{"big"});
  EXPECT_EQ(value("SELECT count(*) FROM contents"), 1);
  EXPECT_EQ(rows("SELECT address FROM recipients WHERE message_id = 'm1'"),
            std::vector<std::string>{"b@example.org"});
  EXPECT_EQ(value("SELECT attempts FROM messages WHERE id = 'm1'"), 2);
}

TEST_F(schema_test, version_2_without_accounts_gets_the_table) {
  prepare({version_2});
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(value("SELECT count(*) FROM accounts"), 0);
  EXPECT_EQ(rows("SELECT CAST(c.data AS TEXT) FROM messages m JOIN contents c "
                 "ON c.id = m.content_id WHERE m.id = 'm2'"),
            std::vector<std::string>{"queued mail"});
}

TEST_F(schema_test, version_2_with_the_token_stores_accounts_keeps_them) {
  prepare({version_2, token_store_accounts});
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(rows("SELECT address || ' ' || refresh_token || ' ' || token_generation FROM accounts"),
            std::vector<std::string>{"alice@example.com 1//kept 4"});
  EXPECT_EQ(value("SELECT count(*) FROM messages"), 1);
}

TEST_F(schema_test, a_database_the_token_store_created_alone_gets_the_spool_tables) {
  prepare({"PRAGMA journal_mode=WAL;", token_store_accounts});
  EXPECT_EQ(value("PRAGMA user_version"), 0);
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(rows("SELECT refresh_token FROM accounts WHERE address = 'ALICE@example.com'"),
            std::vector<std::string>{"1//kept"});
}

TEST_F(schema_test, an_up_to_date_database_is_left_as_it_is) {
  open_queue(dir_);
  const auto before = value("PRAGMA schema_version");  // SQLite's count of schema changes
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA schema_version"), before);
}

// Version 3 kept the tokens in plain text. The migration changes the
// columns' type and keeps the values as they are (still text): sealing them
// needs the key, which only the token store has (tests/auth/token_store_test).
TEST_F(schema_test, version_3_keeps_its_plain_tokens_for_the_token_store_to_seal) {
  prepare({version_2, token_store_accounts, "PRAGMA user_version = 3;"});
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(rows("SELECT typeof(refresh_token) || ' ' || refresh_token || ' ' || state || ' ' || "
                 "token_generation FROM accounts"),
            std::vector<std::string>{"text 1//kept expired 4"});
  EXPECT_EQ(value("SELECT count(*) FROM token_key"), 0);
  EXPECT_EQ(value("SELECT count(*) FROM messages"), 1);
}

TEST_F(schema_test, a_newer_version_is_refused_and_left_untouched) {
  const std::string newer = std::to_string(queue_schema_version + 1);
  prepare({("CREATE TABLE t(x); PRAGMA user_version = " + newer + ";").c_str()});
  try {
    open_queue(dir_);
    FAIL() << "a database of a newer version was opened";
  } catch (const error& e) {
    EXPECT_EQ(std::string(e.what()), file().string() +
                                         ": written by a newer oauth-relay (schema version " +
                                         newer + "); refusing to start so no queued mail is lost");
  }
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version + 1);
  EXPECT_EQ(shape(), std::vector<std::string>{"table t x"});
}

TEST_F(schema_test, version_5_rows_keep_their_8bit_flag_unknown) {
  open_queue(dir_);
  {
    // Back to what version 5 wrote: no eight_bit column.
    connection db(file(), SQLITE_OPEN_READWRITE);
    db.exec(
        "ALTER TABLE messages DROP COLUMN eight_bit; PRAGMA user_version = 5; "
        "INSERT INTO messages(id, received_at, sender, account, body_type, smtputf8, dsn_ret, "
        "envid, size, content_file, next_attempt_ms) "
        "VALUES('m4', 1, 'a@example.com', 'a@example.com', 0, 0, 0, '', 9, 'm4', 5);");
  }
  open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(value("SELECT eight_bit IS NULL FROM messages WHERE id = 'm4'"), 1);
}

TEST_F(schema_test, version_7_counts_its_queue_once_and_the_triggers_keep_the_counts) {
  open_queue(dir_);
  {
    // Back to what version 7 wrote: no counts, no triggers, no age index.
    connection db(file(), SQLITE_OPEN_READWRITE);
    db.exec(
        "DROP TRIGGER queue_counts_insert; DROP TRIGGER queue_counts_delete; "
        "DROP TRIGGER queue_counts_attempts; DROP TABLE queue_counts; DROP INDEX messages_age; "
        "ALTER TABLE accounts DROP COLUMN authorized_at; PRAGMA user_version = 7;");
    for (const char* row : {"('m1', 0)", "('m2', 3)", "('m3', 1)", "('m4', 0)"}) {
      db.exec((std::string("INSERT INTO messages(id, attempts, received_at, sender, account, "
                           "body_type, smtputf8, dsn_ret, envid, size, next_attempt_ms) SELECT "
                           "column1, column2, 1, 'a@example.com', 'a@example.com', 0, 0, 0, '', "
                           "9, 5 FROM (VALUES ") +
               row + ");")
                  .c_str());
    }
  }
  auto db = open_queue(dir_);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(shape(), current_shape);
  EXPECT_EQ(rows("SELECT messages || ' ' || deferred FROM queue_counts"),
            std::vector<std::string>{"4 2"});
  // Each change of a row changes the counts in its own statement's transaction.
  db.exec(
      "UPDATE messages SET attempts = attempts + 1 WHERE id IN ('m1', 'm2'); "
      "DELETE FROM messages WHERE id = 'm3';"
      "INSERT INTO messages(id, attempts, received_at, sender, account, body_type, smtputf8, "
      "dsn_ret, envid, size, next_attempt_ms) VALUES('m5', 2, 1, 'a', 'a', 0, 0, 0, '', 9, 5);");
  EXPECT_EQ(rows("SELECT messages || ' ' || deferred FROM queue_counts"),
            std::vector<std::string>{"4 3"});
  EXPECT_EQ(rows("SELECT count(*) || ' ' || count(CASE WHEN attempts > 0 THEN 1 END) "
                 "FROM messages"),
            std::vector<std::string>{"4 3"});
}

TEST_F(schema_test, the_oldest_arrival_and_a_page_of_the_queue_are_index_seeks) {
  open_queue(dir_);
  // EXPLAIN QUERY PLAN's detail column (the fourth): a SEARCH, never a SCAN
  // of the table.
  auto plan = [&](const char* sql) {
    connection db(file(), SQLITE_OPEN_READONLY);
    statement st(db, std::string("EXPLAIN QUERY PLAN ") + sql);
    std::vector<std::string> out;
    while (st.step()) out.push_back(st.text(3));
    return out;
  };
  EXPECT_EQ(plan("SELECT min(received_at) FROM messages"),
            std::vector<std::string>{"SEARCH messages USING COVERING INDEX messages_age"});
  // A page of the listing starts where the last one ended, in arrival order.
  EXPECT_EQ(plan("SELECT id FROM messages WHERE rowid > 7 ORDER BY rowid LIMIT 100"),
            std::vector<std::string>{"SEARCH messages USING INTEGER PRIMARY KEY (rowid>?)"});
}

TEST_F(schema_test, a_read_only_open_never_migrates) {
  prepare({version_1});
  {
    auto db = open_queue_read_only(dir_);
    EXPECT_EQ(schema_version(db), 1);
  }
  EXPECT_EQ(value("PRAGMA user_version"), 1);
  std::filesystem::remove_all(dir_);
  EXPECT_THROW(open_queue_read_only(dir_), error);
  EXPECT_FALSE(std::filesystem::exists(file()));
}

TEST_F(schema_test, a_damaged_database_is_refused_when_integrity_is_checked) {
  open_queue(dir_);
  {
    connection db(file(), SQLITE_OPEN_READWRITE);
    db.exec(
        "PRAGMA journal_mode=DELETE; CREATE TABLE filler(x); WITH RECURSIVE n(i) AS "
        "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50) "
        "INSERT INTO filler SELECT randomblob(500) FROM n;");
  }
  // The first bytes of page 2 (a b-tree header) become nonsense.
  std::fstream f(file(), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(4096);
  f.write("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12);
  f.close();
  try {
    open_queue(dir_, {.check_integrity = true});
    FAIL() << "a damaged database was opened";
  } catch (const error& e) {
    EXPECT_EQ(e.primary_code(), SQLITE_CORRUPT) << e.what();
    EXPECT_NE(std::string(e.what()).find(file().string() + ": the database is damaged"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(schema_test, processes_opening_an_old_database_at_once_migrate_it_once) {
  prepare({version_1, R"sql(
    INSERT INTO messages VALUES('m1', 1, 'a@example.com', 'a@example.com', 0, 0, 0, '', 8,
      CAST('old mail' AS BLOB), NULL, 2, 5, 'x');
  )sql"});
  std::vector<std::thread> openers;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    openers.emplace_back([&] {
      try {
        open_queue(dir_);
      } catch (const error&) {
        ++failures;
      }
    });
  }
  for (auto& t : openers) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(value("PRAGMA user_version"), queue_schema_version);
  EXPECT_EQ(value("SELECT count(*) FROM contents"), 1);
  EXPECT_EQ(shape(), current_shape);
}

}  // namespace
}  // namespace oauth_relay::db
