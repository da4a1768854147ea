// The logins file: its lines (with exact errors that never quote a hash),
// the mode check, and password checks against real yescrypt and
// SHA-512-crypt hashes.
#include "relay/smtp/logins.hpp"

#include <crypt.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace oauth_relay::relay {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string sha512_of(const std::string& password) {
  crypt_data data{};
  return crypt_r(password.c_str(), "$6$rounds=5000$abcdefgh$", &data);
}

std::string yescrypt_of(const std::string& password) {
  return *hash_password(secret(password));
}

class scratch_file {
 public:
  scratch_file() {
    std::string pattern = (fs::temp_directory_path() / "logins_test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp";
    dir_ = pattern;
  }
  ~scratch_file() { fs::remove_all(dir_); }
  fs::path write(const std::string& text, mode_t mode) {
    const auto p = dir_ / "logins";
    std::ofstream(p, std::ios::trunc) << text;
    ::chmod(p.c_str(), mode);
    return p;
  }
  const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
};

TEST(parse_logins, keeps_every_line_and_reads_the_entries) {
  const std::string y = yescrypt_of("pw");
  const std::string six = sha512_of("pw");
  const auto parsed =
      parse_logins("# printers\n\nscanner:" + y + "\r\n  # indented\nnas:" + six + "\n", "logins");
  EXPECT_THAT(parsed.errors, ElementsAre());
  ASSERT_EQ(parsed.lines.size(), 5u);
  EXPECT_EQ(parsed.lines[0].text, "# printers");
  EXPECT_FALSE(parsed.lines[0].entry);
  EXPECT_EQ(parsed.lines[2].text, "scanner:" + y + "\r");
  ASSERT_TRUE(parsed.lines[2].entry);
  EXPECT_EQ(parsed.lines[2].entry->name, "scanner");
  EXPECT_EQ(parsed.lines[2].entry->hash, y);
  EXPECT_EQ(parsed.lines[4].entry->name, "nas");
}

TEST(parse_logins, every_error_with_its_line_and_no_hash_quoted) {
  const std::string y = yescrypt_of("pw");
  const std::string md5 = "$1$saltsalt$abcdefghijklmnopqrstuv";
  const auto parsed = parse_logins(
      "no colon here\n"
      "-dash:" +
          y +
          "\n"
          "bad name:" +
          y +
          "\n"
          "old:" +
          md5 +
          "\n"
          "des:abQ9KY.KfrYrc\n"
          "broken:$y$j9T$\n"
          "fields:" +
          y +
          ":0:0\n"
          "ok:" +
          y +
          "\n"
          "ok:" +
          y + "\n",
      "f");
  EXPECT_THAT(
      parsed.errors,
      ElementsAre(
          "f:1: expected NAME:HASH",
          "f:2: \"-dash\" is not a login name (1 to 64 letters, digits, \".\", \"_\", \"-\", "
          "\"@\", \"+\")",
          "f:3: \"bad name\" is not a login name (1 to 64 letters, digits, \".\", \"_\", \"-\", "
          "\"@\", \"+\")",
          "f:4: login old: the hash is not yescrypt ($y$) or SHA-512-crypt ($6$); "
          "oauth-relayctl login add old makes a new one",
          "f:5: login des: the hash is not yescrypt ($y$) or SHA-512-crypt ($6$); "
          "oauth-relayctl login add des makes a new one",
          "f:6: login broken: the hash is malformed (crypt(3) cannot use it); oauth-relayctl "
          "login add broken makes a new one",
          "f:7: login fields: expected NAME:HASH and nothing after the hash",
          "f:9: login ok is listed twice"));
  for (const auto& e : parsed.errors) {
    EXPECT_THAT(e, Not(HasSubstr(y)));
    EXPECT_THAT(e, Not(HasSubstr("abQ9KY")));
  }
}

TEST(login_table, checks_passwords_of_both_methods) {
  login_table table({{"scanner", yescrypt_of("right one")}, {"nas", sha512_of("other")}});
  EXPECT_TRUE(table.verify("scanner", secret("right one")));
  EXPECT_FALSE(table.verify("scanner", secret("right on")));
  EXPECT_FALSE(table.verify("scanner", secret("")));
  EXPECT_TRUE(table.verify("nas", secret("other")));
  EXPECT_FALSE(table.verify("nas", secret("right one")));
  // Names are exact; an unknown name never passes, not even with a known password.
  EXPECT_FALSE(table.verify("Scanner", secret("right one")));
  EXPECT_FALSE(table.verify("nobody", secret("right one")));
  login_table empty({});
  EXPECT_FALSE(empty.verify("scanner", secret("right one")));
}

TEST(hash_password, makes_fresh_yescrypt_hashes) {
  const auto a = hash_password(secret("pw"));
  const auto b = hash_password(secret("pw"));
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->starts_with("$y$"));
  EXPECT_NE(*a, *b);  // a new salt each time
  EXPECT_EQ(hash_problem(*a), "");
}

TEST(login_table_load, reads_a_private_file) {
  scratch_file dir;
  const auto path = dir.write("# x\nscanner:" + yescrypt_of("pw") + "\n", 0640);
  const auto loaded = login_table::load(path);
  EXPECT_THAT(loaded.errors, ElementsAre());
  ASSERT_TRUE(loaded.table);
  EXPECT_EQ(loaded.table->size(), 1u);
  EXPECT_TRUE(loaded.table->verify("scanner", secret("pw")));
}

TEST(login_table_load, refuses_a_file_others_may_read_or_write) {
  scratch_file dir;
  const auto path = dir.write("scanner:" + yescrypt_of("pw") + "\n", 0644);
  EXPECT_THAT(login_table::load(path).errors,
              ElementsAre(path.string() +
                          ": other users may read or write it (mode 0644): the hashes would be "
                          "open to guessing; run chmod o-rwx " +
                          path.string()));
  ::chmod(path.c_str(), 0602);
  EXPECT_FALSE(login_table::load(path).table);
}

TEST(login_table_load, names_the_problem) {
  scratch_file dir;
  EXPECT_THAT(
      login_table::load(dir.dir() / "missing").errors,
      ElementsAre((dir.dir() / "missing").string() + ": cannot read: No such file or directory"));
  EXPECT_THAT(login_table::load(dir.dir()).errors,
              ElementsAre(dir.dir().string() + ": not a regular file"));
  const auto path = dir.write("scanner\n", 0600);
  EXPECT_THAT(login_table::load(path).errors,
              ElementsAre(path.string() + ":1: expected NAME:HASH"));
}

}  // namespace
}  // namespace oauth_relay::relay
