// The SQLite wrapper: errors carry SQLite's code and name the file, kept
// statements are reusable after a failure, the cache prepares once.
#include "db/sqlite.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <random>
#include <string>

namespace oauth_relay::db {
namespace {

class sqlite_test : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sqlite-test-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

TEST_F(sqlite_test, a_file_that_cannot_be_opened_is_named) {
  const auto missing = dir_ / "missing.db";
  try {
    connection db(missing, SQLITE_OPEN_READONLY);
    FAIL() << "opened a file that does not exist";
  } catch (const error& e) {
    EXPECT_EQ(e.primary_code(), SQLITE_CANTOPEN);
    EXPECT_EQ(std::string(e.what()),
              missing.string() + ": cannot open: unable to open database file");
  }
}

TEST_F(sqlite_test, a_failed_step_carries_the_code_and_the_file_and_leaves_the_statement_usable) {
  connection db(dir_ / "t.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("CREATE TABLE t(k TEXT PRIMARY KEY, v INTEGER NOT NULL)");
  statement insert(db, "INSERT INTO t(k, v) VALUES(?1, ?2)", /*persistent=*/true);
  insert.bind(1, "a").bind(2, std::int64_t{1}).run();
  EXPECT_EQ(db.changes(), 1);
  try {
    insert.bind(1, "a").bind(2, std::int64_t{2}).run();
    FAIL() << "a duplicate key was inserted";
  } catch (const error& e) {
    EXPECT_EQ(e.code(), SQLITE_CONSTRAINT_PRIMARYKEY);
    EXPECT_EQ(e.primary_code(), SQLITE_CONSTRAINT);
    EXPECT_NE(std::string(e.what()).find("t.db: UNIQUE constraint failed: t.k"), std::string::npos)
        << e.what();
  }
  insert.bind(1, "b").bind(2, std::int64_t{3}).run();  // reset by the failure
  statement all(db, "SELECT k, v, NULL, CAST('xy' AS BLOB) FROM t ORDER BY k");
  ASSERT_TRUE(all.step());
  EXPECT_EQ(all.text(0), "a");
  EXPECT_EQ(all.int64(1), 1);
  EXPECT_TRUE(all.is_null(2));
  EXPECT_EQ(all.optional_int64(2), std::nullopt);
  EXPECT_EQ(all.optional_int64(1), 1);
  EXPECT_EQ(all.blob(3), "xy");
  ASSERT_TRUE(all.step());
  EXPECT_EQ(all.text_view(0), "b");
  EXPECT_FALSE(all.step());
}

TEST_F(sqlite_test, exec_and_prepare_failures_name_the_file) {
  connection db(dir_ / "t.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  try {
    db.exec("SELECT * FROM nowhere");
    FAIL();
  } catch (const error& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "t.db").string() + ": no such table: nowhere");
  }
  try {
    statement st(db, "SELECT * FROM nowhere");
    FAIL();
  } catch (const error& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir_ / "t.db").string() + ": cannot prepare statement: no such table: nowhere");
  }
}

TEST_F(sqlite_test, the_cache_prepares_each_constant_once) {
  static constexpr const char* one = "SELECT 1";
  static constexpr const char* two = "SELECT 2";
  connection db(dir_ / "t.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  statement_cache cache(db);
  auto& first = cache.get(one);
  EXPECT_EQ(&cache.get(one), &first);
  EXPECT_NE(&cache.get(two), &first);
  {
    reset_on_exit reset(first);
    ASSERT_TRUE(first.step());
    EXPECT_EQ(first.int64(0), 1);
  }
  ASSERT_TRUE(first.step());  // from the start again
  EXPECT_EQ(first.int64(0), 1);
  first.reset();
}

}  // namespace
}  // namespace oauth_relay::db
