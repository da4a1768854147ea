// queue.db is opened without following symbolic links: a link planted in
// place of queue.db, its -wal or its -shm is refused, and the file it points
// to keeps its owner, mode and content. Private files are created 0600.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "config/private_file.hpp"
#include "db/schema.hpp"

namespace oauth_relay::db {
namespace {

namespace fs = std::filesystem;

struct file_state {
  unsigned mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string content;
  bool operator==(const file_state&) const = default;
};

file_state state_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  std::ifstream in(p, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return {static_cast<unsigned>(st.st_mode & 07777), st.st_uid, st.st_gid, text.str()};
}

class private_open : public testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("private-open-" + std::to_string(std::random_device{}()));
    dir_ = base_ / "state";
    target_ = base_ / "target";
    fs::create_directories(dir_);
    std::ofstream(target_) << "not yours\n";
    fs::permissions(target_, fs::perms(0644));
  }
  void TearDown() override { fs::remove_all(base_); }

  // Opening must fail, and the link's target must stay exactly as it was.
  void expect_refused_through(const std::string& name) {
    fs::create_symlink(target_, dir_ / name);
    const auto before = state_of(target_);
    EXPECT_THROW(open_queue(dir_), error) << name;
    EXPECT_EQ(state_of(target_), before) << name;
    EXPECT_TRUE(fs::is_symlink(dir_ / name)) << name;
  }

  fs::path base_;
  fs::path dir_;     // the state directory
  fs::path target_;  // a file outside it, as /etc/shadow would be
};

TEST_F(private_open, a_link_in_place_of_queue_db_is_refused_with_a_clear_error) {
  fs::create_symlink(target_, dir_ / "queue.db");
  const auto before = state_of(target_);
  try {
    open_queue(dir_);
    FAIL() << "opened through a symbolic link";
  } catch (const error& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "queue.db").string() +
                                         ": is a symbolic link; refusing to follow it (remove it)");
  }
  EXPECT_EQ(state_of(target_), before);
  EXPECT_THROW(open_queue_read_only(dir_), error);
  EXPECT_EQ(state_of(target_), before);
}

TEST_F(private_open, a_link_in_place_of_the_wal_is_refused) {
  expect_refused_through("queue.db-wal");
}

TEST_F(private_open, a_link_in_place_of_the_shared_memory_file_is_refused) {
  expect_refused_through("queue.db-shm");
}

TEST_F(private_open, an_existing_database_with_a_planted_wal_link_is_refused_by_name) {
  open_queue(dir_);  // a real database, closed again (its -wal and -shm go with it)
  ASSERT_FALSE(fs::exists(dir_ / "queue.db-wal"));
  expect_refused_through("queue.db-wal");
  try {
    open_queue_read_only(dir_);
    FAIL() << "opened with a linked WAL";
  } catch (const error& e) {
    EXPECT_EQ(std::string(e.what()), (dir_ / "queue.db-wal").string() +
                                         ": is a symbolic link; refusing to follow it (remove it)");
  }
}

TEST(private_file, is_created_0600_tightened_to_0600_and_never_followed) {
  const auto base =
      fs::temp_directory_path() / ("private-file-" + std::to_string(std::random_device{}()));
  fs::create_directories(base);
  const auto file = base / "f";
  EXPECT_EQ(ensure_private_file(file), "");
  EXPECT_EQ(state_of(file).mode, 0600u);
  fs::permissions(file, fs::perms(0644));
  EXPECT_EQ(ensure_private_file(file), "");
  EXPECT_EQ(state_of(file).mode, 0600u);

  const auto target = base / "target";
  std::ofstream(target) << "x";
  fs::permissions(target, fs::perms(0644));
  fs::create_symlink(target, base / "link");
  EXPECT_EQ(ensure_private_file(base / "link"),
            (base / "link").string() + ": is a symbolic link; refusing to follow it (remove it)");
  EXPECT_EQ(state_of(target).mode, 0644u);
  fs::create_symlink(base / "nowhere", base / "dangling");
  EXPECT_NE(ensure_private_file(base / "dangling"), "");
  EXPECT_FALSE(fs::exists(base / "nowhere"));
  fs::create_directory(base / "dir");
  EXPECT_EQ(ensure_private_file(base / "dir"), (base / "dir").string() + ": is not a regular file");
  fs::remove_all(base);
}

}  // namespace
}  // namespace oauth_relay::db
