// The accounts table: round trips, the generation rule that lets
// oauth-relayctl's writes win over a refresh in flight, sharing the spool's
// database file, and the tokens sealed: never in plain text in any file,
// plain ones of schema version 3 sealed on open, altered ones refused.
#include "auth/token_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/token_key.hpp"
#include "db/schema.hpp"
#include "oauth_test_support.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::auth {
namespace {

using testing_support::temp_dir;
using testing_support::test_cipher;

unsigned mode_of(const std::filesystem::path& p) {
  struct stat st {};
  ::stat(p.c_str(), &st);
  return st.st_mode & 0777;
}

config::account_settings account(std::string address) {
  config::account_settings a;
  a.address = std::move(address);
  return a;
}

class token_store_test : public testing::Test {
 protected:
  temp_dir dir_;
  std::filesystem::path state_ = dir_.path() / "state";
};

TEST_F(token_store_test, creates_private_database_and_directory) {
  token_store store(state_, test_cipher());
  EXPECT_EQ(mode_of(state_), 0700u);
  EXPECT_EQ(mode_of(state_ / "queue.db"), 0600u);
  EXPECT_TRUE(store.load_all().empty());
}

TEST_F(token_store_test, ensure_accounts_adds_missing_rows_once_ignoring_case) {
  token_store store(state_, test_cipher());
  store.ensure_accounts({account("alice@example.com"), account("bob@example.com")});
  store.ensure_accounts({account("Alice@Example.COM")});
  auto all = store.load_all();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].address, "alice@example.com");
  EXPECT_EQ(all[0].state, token_state::missing);
  EXPECT_EQ(all[0].refresh_token, "");
  EXPECT_EQ(all[0].token_generation, 0);
  EXPECT_EQ(all[0].refresh_failures, 0);
  EXPECT_FALSE(all[0].last_delivery.has_value());
  EXPECT_GT(all[0].updated_at, 0);
  EXPECT_EQ(all[1].address, "bob@example.com");
}

TEST_F(token_store_test, store_refresh_token_bumps_generation_and_resets_the_account) {
  token_store store(state_, test_cipher());
  store.ensure_accounts({account("alice@example.com")});
  EXPECT_EQ(store.store_refresh_token("alice@example.com", "1//first"), 1);
  auto row = store.get("ALICE@example.com");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->refresh_token, "1//first");
  EXPECT_EQ(row->state, token_state::expired);

  ASSERT_TRUE(store.store_access_token("alice@example.com", 1, "ya29.a", 2000000000));
  ASSERT_TRUE(
      store.record_refresh_failure("alice@example.com", token_state::refresh_failing, "boom", 1));
  EXPECT_EQ(store.store_refresh_token("alice@example.com", "1//second"), 2);
  row = store.get("alice@example.com");
  EXPECT_EQ(row->refresh_token, "1//second");
  EXPECT_EQ(row->access_token, "");
  EXPECT_EQ(row->access_expires_at, 0);
  EXPECT_EQ(row->state, token_state::expired);
  EXPECT_EQ(row->last_error, "");
  EXPECT_EQ(row->refresh_failures, 0);
  EXPECT_EQ(row->token_generation, 2);
}

TEST_F(token_store_test, store_refresh_token_creates_an_unconfigured_account) {
  token_store store(state_, test_cipher());
  EXPECT_EQ(store.store_refresh_token("carol@example.com", "1//c"), 1);
  auto row = store.get("carol@example.com");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, token_state::expired);
  EXPECT_EQ(row->refresh_token, "1//c");
}

TEST_F(token_store_test, access_token_applies_only_under_the_same_generation) {
  token_store store(state_, test_cipher());
  store.store_refresh_token("alice@example.com", "1//first");
  store.store_refresh_token("alice@example.com", "1//second");  // generation 2
  EXPECT_FALSE(store.store_access_token("alice@example.com", 1, "ya29.old", 2000000000));
  EXPECT_EQ(store.get("alice@example.com")->access_token, "");

  auto generation = store.store_access_token("alice@example.com", 2, "ya29.new", 2000000000);
  ASSERT_TRUE(generation);
  EXPECT_EQ(*generation, 2);
  auto row = store.get("alice@example.com");
  EXPECT_EQ(row->access_token, "ya29.new");
  EXPECT_EQ(row->access_expires_at, 2000000000);
  EXPECT_EQ(row->state, token_state::valid);
  EXPECT_EQ(row->refresh_token, "1//second");
}

TEST_F(token_store_test, rotated_refresh_token_replaces_the_stored_one_and_bumps_generation) {
  token_store store(state_, test_cipher());
  store.store_refresh_token("alice@example.com", "1//first");
  ASSERT_TRUE(store.record_refresh_failure("alice@example.com", token_state::refresh_failing,
                                           "HTTP 503", 1));
  auto generation =
      store.store_access_token("alice@example.com", 1, "ya29.a", 2000000000, "1//rotated");
  ASSERT_TRUE(generation);
  EXPECT_EQ(*generation, 2);
  auto row = store.get("alice@example.com");
  EXPECT_EQ(row->refresh_token, "1//rotated");
  EXPECT_EQ(row->token_generation, 2);
  EXPECT_EQ(row->refresh_failures, 0);
  EXPECT_EQ(row->last_error, "");
}

TEST_F(token_store_test, failures_count_and_respect_the_generation) {
  token_store store(state_, test_cipher());
  store.store_refresh_token("alice@example.com", "1//first");
  EXPECT_EQ(store.record_refresh_failure("alice@example.com", token_state::refresh_failing,
                                         "HTTP 503", 1),
            1);
  EXPECT_EQ(store.record_refresh_failure("alice@example.com", token_state::refresh_failing,
                                         "HTTP 502", 1),
            2);
  EXPECT_FALSE(store.record_refresh_failure("alice@example.com", token_state::needs_reauth,
                                            "invalid_grant", 7));
  auto row = store.get("alice@example.com");
  EXPECT_EQ(row->state, token_state::refresh_failing);
  EXPECT_EQ(row->last_error, "HTTP 502");
  EXPECT_EQ(row->refresh_failures, 2);

  EXPECT_FALSE(store.set_state("alice@example.com", token_state::needs_reauth, "x", 7));
  EXPECT_TRUE(store.set_state("alice@example.com", token_state::needs_reauth, "revoked", 1));
  EXPECT_TRUE(store.set_state("alice@example.com", token_state::needs_reauth, "revoked again"));
  row = store.get("alice@example.com");
  EXPECT_EQ(row->state, token_state::needs_reauth);
  EXPECT_EQ(row->last_error, "revoked again");
}

TEST_F(token_store_test, clear_access_token_only_forgets_that_token) {
  token_store store(state_, test_cipher());
  store.store_refresh_token("alice@example.com", "1//first");
  store.store_access_token("alice@example.com", 1, "ya29.current", 2000000000);
  store.clear_access_token("alice@example.com", "ya29.older");
  EXPECT_EQ(store.get("alice@example.com")->access_token, "ya29.current");
  store.clear_access_token("alice@example.com", "ya29.current");
  auto row = store.get("alice@example.com");
  EXPECT_EQ(row->access_token, "");
  EXPECT_EQ(row->access_expires_at, 0);
  EXPECT_EQ(row->state, token_state::expired);
}

TEST_F(token_store_test, records_last_delivery) {
  token_store store(state_, test_cipher());
  store.ensure_accounts({account("alice@example.com")});
  store.record_delivery("alice@example.com", 1700000000);
  EXPECT_EQ(store.get("alice@example.com")->last_delivery, 1700000000);
}

TEST_F(token_store_test, another_connection_sees_writes_like_oauth_relayctl_would) {
  token_store daemon(state_, test_cipher());
  daemon.ensure_accounts({account("alice@example.com")});
  {
    token_store ctl(state_, test_cipher());
    EXPECT_EQ(ctl.store_refresh_token("alice@example.com", "1//from-ctl"), 1);
  }
  auto row = daemon.get("alice@example.com");
  EXPECT_EQ(row->refresh_token, "1//from-ctl");
  EXPECT_EQ(row->token_generation, 1);
}

TEST_F(token_store_test, shares_the_spool_database) {
  boost::asio::io_context io;
  boost::asio::thread_pool blocking(1);
  relay::spool spool(state_, io.get_executor(), blocking.get_executor());
  token_store store(state_, test_cipher());
  store.store_refresh_token("alice@example.com", "1//x");
  token_store reopened(state_, test_cipher());
  EXPECT_EQ(reopened.get("alice@example.com")->refresh_token, "1//x");
  EXPECT_EQ(mode_of(state_ / "queue.db"), 0600u);
}

// Every file under `dir` (queue.db, its -wal and -shm, spool files) whose
// bytes contain `text`.
std::vector<std::string> files_containing(const std::filesystem::path& dir,
                                          const std::string& text) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    if (bytes.str().find(text) != std::string::npos) found.push_back(entry.path().string());
  }
  return found;
}

// Runs SQL on the database with a connection of its own, as a person with
// the sqlite3 tool (or someone who copied the file) would.
void sql(const std::filesystem::path& state, const char* statements) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((state / "queue.db").c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  EXPECT_EQ(sqlite3_exec(db, statements, nullptr, nullptr, &error), SQLITE_OK) << error;
  sqlite3_free(error);
  sqlite3_close(db);
}

constexpr const char* refresh_text = "1//0refresh-token-that-opens-the-whole-mailbox";
constexpr const char* access_text = "ya29.access-token-for-an-hour";

TEST_F(token_store_test, no_file_of_the_state_directory_holds_a_token_in_plain_text) {
  token_store store(state_, test_cipher());
  store.store_refresh_token("alice@example.com", refresh_text);
  ASSERT_TRUE(store.store_access_token("alice@example.com", 1, access_text, 2000000000));
  // Read back through the store, while its connection and the WAL are open...
  EXPECT_EQ(store.get("alice@example.com")->refresh_token, refresh_text);
  EXPECT_TRUE(std::filesystem::exists(state_ / "queue.db-wal"));
  EXPECT_THAT(files_containing(state_, refresh_text), testing::IsEmpty());
  EXPECT_THAT(files_containing(state_, access_text), testing::IsEmpty());
  EXPECT_THAT(files_containing(state_, "alice@example.com"), testing::Not(testing::IsEmpty()));
  // ... and in the columns themselves, as anyone with the file sees them.
  auto db = db::open_queue_read_only(state_);
  db::statement types(db,
                      "SELECT typeof(refresh_token) || ' ' || typeof(access_token) FROM accounts");
  ASSERT_TRUE(types.step());
  EXPECT_EQ(types.text(0), "blob blob");
}

// Schema version 3 kept tokens in plain text: the first open with a key seals
// them, and no plain copy stays in the database, its WAL or free pages.
TEST_F(token_store_test, plain_tokens_of_schema_version_3_are_sealed_on_open) {
  std::filesystem::create_directories(state_);
  // A version 3 database has the spool's tables too; later migrations add
  // columns to `messages` and count and index it by attempts and arrival
  // (its other columns do not matter here).
  sql(state_, R"sql(
PRAGMA journal_mode=WAL;
CREATE TABLE messages(id INTEGER PRIMARY KEY, received_at INTEGER, attempts INTEGER);
CREATE TABLE accounts(
  address TEXT PRIMARY KEY COLLATE NOCASE, refresh_token TEXT, access_token TEXT,
  access_expires_at INTEGER, state TEXT NOT NULL, last_error TEXT NOT NULL DEFAULT '',
  last_delivery INTEGER, refresh_failures INTEGER NOT NULL DEFAULT 0,
  token_generation INTEGER NOT NULL DEFAULT 0, updated_at INTEGER NOT NULL);
INSERT INTO accounts VALUES('alice@example.com', '1//0refresh-token-that-opens-the-whole-mailbox',
  'ya29.access-token-for-an-hour', 2000000000, 'valid', '', 1700000000, 0, 3, 1700000000);
INSERT INTO accounts VALUES('bob@example.com', '1//0bobs-plain-refresh-token', NULL, NULL,
  'expired', '', NULL, 0, 1, 1700000000);
INSERT INTO accounts VALUES('carol@example.com', NULL, NULL, NULL, 'missing', '', NULL, 0, 0, 1);
PRAGMA user_version = 3;
)sql");
  ASSERT_THAT(files_containing(state_, refresh_text), testing::Not(testing::IsEmpty()));
  {
    token_store store(state_, test_cipher());
    auto alice = store.get("alice@example.com");
    EXPECT_EQ(alice->refresh_token, refresh_text);
    EXPECT_EQ(alice->access_token, access_text);
    EXPECT_EQ(alice->state, token_state::valid);
    EXPECT_EQ(alice->token_generation, 3);
    EXPECT_EQ(alice->last_delivery, 1700000000);
    EXPECT_EQ(store.get("bob@example.com")->refresh_token, "1//0bobs-plain-refresh-token");
    EXPECT_EQ(store.get("carol@example.com")->state, token_state::missing);
    EXPECT_EQ(store.get("carol@example.com")->refresh_token, "");
    EXPECT_THAT(files_containing(state_, refresh_text), testing::IsEmpty());
    EXPECT_THAT(files_containing(state_, access_text), testing::IsEmpty());
    EXPECT_THAT(files_containing(state_, "1//0bobs-plain-refresh-token"), testing::IsEmpty());
  }
  {
    auto db = db::open_queue_read_only(state_);
    EXPECT_EQ(db::schema_version(db), db::queue_schema_version);
  }
  // Sealed once: another open with the key finds nothing left to seal.
  token_store again(state_, test_cipher());
  EXPECT_EQ(again.get("alice@example.com")->refresh_token, refresh_text);
  EXPECT_THROW(token_store(state_, test_cipher('w')), token_key_error);
}

TEST_F(token_store_test, a_sealed_value_moved_to_another_row_or_column_is_refused) {
  {
    token_store store(state_, test_cipher());
    store.store_refresh_token("alice@example.com", "1//alice");
    store.store_refresh_token("bob@example.com", "1//bob");
    store.store_access_token("bob@example.com", 1, "ya29.bob", 2000000000);
  }
  // Bob's refresh token into Alice's row, Bob's access token into his refresh column.
  sql(state_, R"sql(
UPDATE accounts SET refresh_token = (SELECT refresh_token FROM accounts WHERE address = 'bob@example.com')
  WHERE address = 'alice@example.com';
UPDATE accounts SET refresh_token = access_token WHERE address = 'bob@example.com';
)sql");
  token_store store(state_, test_cipher());
  for (const char* address : {"alice@example.com", "bob@example.com"}) {
    auto row = store.get(address);
    EXPECT_EQ(row->refresh_token, "") << address;
    EXPECT_EQ(row->state, token_state::needs_reauth) << address;
    EXPECT_EQ(row->last_error,
              "the stored refresh token of " + std::string(address) +
                  " cannot be decrypted (altered, or copied from another row or database); "
                  "authorize it again: oauth-relayctl authorize " +
                  address);
  }
  // Bob's own access token still opens: a valid account keeps sending.
  EXPECT_EQ(store.get("bob@example.com")->access_token, "ya29.bob");
}

TEST_F(token_store_test, a_plain_value_written_past_the_store_is_not_taken) {
  {
    token_store store(state_, test_cipher());
    store.store_refresh_token("alice@example.com", "1//alice");
    store.store_access_token("alice@example.com", 1, "ya29.alice", 2000000000);
  }
  token_store store(state_, test_cipher());
  sql(state_, "UPDATE accounts SET refresh_token = '1//injected', access_token = 'ya29.injected'");
  const auto row = store.get("alice@example.com");
  EXPECT_EQ(row->refresh_token, "");
  EXPECT_EQ(row->access_token, "");
  EXPECT_EQ(row->access_expires_at, 0);
  EXPECT_EQ(row->state, token_state::needs_reauth);
}

TEST(token_state_names, round_trip) {
  for (auto s : {token_state::valid, token_state::expired, token_state::needs_reauth,
                 token_state::refresh_failing, token_state::missing}) {
    EXPECT_EQ(parse_token_state(to_string(s)), s);
  }
  EXPECT_EQ(to_string(token_state::needs_reauth), "needs_reauth");
  EXPECT_EQ(to_string(token_state::refresh_failing), "refresh_failing");
  EXPECT_FALSE(parse_token_state("bogus"));
}

}  // namespace
}  // namespace oauth_relay::auth
