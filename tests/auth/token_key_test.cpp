// Where the token key comes from and what is refused: the key file's format
// and mode, a missing file made or not, the systemd credential first, and a
// key that is not the database's found before anything is written.
#include "auth/token_key.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "auth/token_store.hpp"
#include "common/text.hpp"
#include "oauth_test_support.hpp"

namespace oauth_relay::auth {
namespace {

using testing::HasSubstr;
using testing_support::temp_dir;

constexpr const char* alice = "alice@example.com";

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::filesystem::path& p, const std::string& text, mode_t mode) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << text;
  ::chmod(p.c_str(), mode);
}

std::string base64_key(char fill) {
  return base64_encode(std::string(token_key_size, fill));
}

// What load_token_key_file throws for `file`, as "CAUSE | FIX".
std::string refusal(const std::filesystem::path& file, when_missing missing) {
  try {
    load_token_key_file(file, missing);
  } catch (const token_key_error& e) {
    return std::string(e.what()) + " | " + e.fix();
  }
  return "(loaded)";
}

// Sets CREDENTIALS_DIRECTORY for one test, as systemd does for the service.
class credentials_directory {
 public:
  explicit credentials_directory(const std::filesystem::path& dir) {
    ::setenv("CREDENTIALS_DIRECTORY", dir.c_str(), 1);
  }
  ~credentials_directory() { ::unsetenv("CREDENTIALS_DIRECTORY"); }
};

class token_key_test : public testing::Test {
 protected:
  temp_dir dir_;
  std::filesystem::path file_ = dir_.path() / "token.key";
};

TEST_F(token_key_test, a_base64_key_file_of_mode_0400_is_loaded) {
  write(file_, base64_key('a') + "\n", 0400);
  const auto cipher = load_token_key_file(file_, when_missing::fail);
  EXPECT_EQ(cipher.origin(), "the token key file " + file_.string());
  const auto sealed = token_cipher(std::string(token_key_size, 'a'), "same key")
                          .seal(alice, token_field::refresh, "1//x");
  EXPECT_EQ(cipher.open(alice, token_field::refresh, sealed), "1//x");
}

TEST_F(token_key_test, a_key_file_others_may_read_is_refused) {
  write(file_, base64_key('a'), 0440);
  EXPECT_EQ(refusal(file_, when_missing::fail),
            "the token key file " + file_.string() +
                " may be read or written by others than its owner (mode 0440) | chmod 0400 " +
                file_.string() + " (readable by the user oauth-relayd runs as, and nobody else)");
  ::chmod(file_.c_str(), 0604);
  EXPECT_THAT(refusal(file_, when_missing::fail), HasSubstr("(mode 0604)"));
}

TEST_F(token_key_test, a_file_without_a_key_is_refused) {
  for (const std::string& text :
       {std::string(), std::string(token_key_size, 'a'), base64_key('a').substr(0, 40),
        base64_encode(std::string(16, 'a')), base64_key('a') + "\nmore"}) {
    write(file_, text, 0400);
    EXPECT_THAT(refusal(file_, when_missing::fail),
                HasSubstr("the token key file " + file_.string() +
                          " does not hold a token key (expected 32 random bytes in base64: 44 "
                          "characters) | restore " +
                          file_.string() +
                          " from your backup; if no token was ever stored with it, make a new "
                          "one: "))
        << text;
    std::filesystem::remove(file_);
  }
}

TEST_F(token_key_test, a_missing_file_is_not_made_unless_asked) {
  EXPECT_EQ(refusal(file_, when_missing::fail),
            "the token key file " + file_.string() +
                " does not exist | create it as root: " + key_file_command(file_) +
                " (if tokens were stored before, restore that key from your backup instead)");
  EXPECT_THAT(refusal(file_, when_missing::fail_lost),
              HasSubstr("does not exist | restore " + file_.string() +
                        " from your backup: the tokens in the database were sealed with it"));
  EXPECT_FALSE(std::filesystem::exists(file_));
}

TEST_F(token_key_test, a_missing_file_is_made_private_and_random_when_asked) {
  const auto made = load_token_key_file(file_, when_missing::create);
  struct stat st {};
  ASSERT_EQ(::stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  const std::string text = read(file_);
  ASSERT_EQ(text.size(), 45u);
  EXPECT_EQ(text.back(), '\n');
  EXPECT_EQ(base64_decode(text.substr(0, 44))->size(), token_key_size);
  // Loaded again, it is the same key; nothing else was left in the directory.
  const auto again = load_token_key_file(file_, when_missing::create);
  EXPECT_EQ(again.open(alice, token_field::access, made.seal(alice, token_field::access, "t")),
            "t");
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir_.path()),
                          std::filesystem::directory_iterator()),
            1);
  // Another file made the same way is another key.
  const auto other = load_token_key_file(dir_.path() / "other.key", when_missing::create);
  EXPECT_EQ(other.open(alice, token_field::access, made.seal(alice, token_field::access, "t")),
            std::nullopt);
}

TEST_F(token_key_test, a_file_that_cannot_be_made_says_how_to_make_it) {
  const auto file = dir_.path() / "no-such-dir" / "token.key";
  EXPECT_THAT(refusal(file, when_missing::create),
              HasSubstr("the token key file " + file.string() +
                        " does not exist and cannot be created: No such file or directory | "
                        "create it as root: "));
}

TEST_F(token_key_test, the_systemd_credential_comes_before_the_file) {
  const auto credentials = dir_.path() / "credentials";
  std::filesystem::create_directories(credentials);
  write(credentials / "token-key", base64_key('c') + "\n", 0400);
  write(file_, base64_key('f'), 0400);
  config::secrets_settings secrets;
  secrets.key_file = file_;
  credentials_directory env(credentials);
  const auto cipher = load_token_cipher(secrets, when_missing::fail);
  EXPECT_EQ(cipher.origin(),
            "the systemd credential token-key (" + (credentials / "token-key").string() + ")");
  const auto sealed =
      token_cipher(std::string(token_key_size, 'c'), "c").seal(alice, token_field::refresh, "1//c");
  EXPECT_EQ(cipher.open(alice, token_field::refresh, sealed), "1//c");

  write(credentials / "token-key", "not a key", 0400);
  try {
    load_token_cipher(secrets, when_missing::fail);
    FAIL() << "a credential without a key was taken";
  } catch (const token_key_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("the systemd credential token-key ("));
    EXPECT_THAT(e.what(), HasSubstr(") does not hold a token key"));
    EXPECT_THAT(e.fix(), HasSubstr("systemd-creds encrypt --name=token-key " + file_.string()));
  }
}

TEST_F(token_key_test, without_the_credential_the_file_is_used) {
  write(file_, base64_key('f'), 0400);
  config::secrets_settings secrets;
  secrets.key_file = file_;
  credentials_directory env(dir_.path() / "empty");  // a service without token-key
  EXPECT_EQ(load_token_cipher(secrets, when_missing::fail).origin(),
            "the token key file " + file_.string());
}

class token_cipher_for_test : public token_key_test {
 protected:
  config::settings settings() const {
    config::settings s;
    s.state_dir = dir_.path() / "state";
    s.secrets.key_file = file_;
    return s;
  }
  std::string refusal(key_creation creation) {
    try {
      token_cipher_for(settings(), creation);
    } catch (const token_key_error& e) {
      return std::string(e.what()) + " | " + e.fix();
    }
    return "(loaded)";
  }
};

TEST_F(token_cipher_for_test, the_daemon_makes_the_key_of_a_new_database_and_ctl_does_not) {
  EXPECT_THAT(refusal(key_creation::never), HasSubstr(" does not exist | create it as root"));
  EXPECT_FALSE(std::filesystem::exists(file_));
  EXPECT_EQ(refusal(key_creation::allowed), "(loaded)");
  EXPECT_TRUE(std::filesystem::exists(file_));
  EXPECT_EQ(refusal(key_creation::never), "(loaded)");
}

TEST_F(token_cipher_for_test, a_lost_key_is_never_replaced) {
  {
    token_store store(settings().state_dir, token_cipher_for(settings(), key_creation::allowed));
    store.store_refresh_token(alice, "1//sealed-with-the-first-key");
  }
  std::filesystem::remove(file_);
  EXPECT_THAT(refusal(key_creation::allowed),
              HasSubstr("the token key file " + file_.string() + " does not exist | restore " +
                        file_.string() + " from your backup"));
  EXPECT_FALSE(std::filesystem::exists(file_));
}

TEST_F(token_cipher_for_test, a_wrong_key_is_refused_before_the_database_is_opened_for_writing) {
  {
    token_store store(settings().state_dir, token_cipher_for(settings(), key_creation::allowed));
    store.store_refresh_token(alice, "1//sealed-with-the-first-key");
  }
  const auto db = settings().state_dir / "queue.db";
  const auto before = std::filesystem::last_write_time(db);
  write(file_, base64_key('w'), 0400);
  EXPECT_EQ(refusal(key_creation::allowed),
            "the token key file " + file_.string() + " is not the key the tokens in " +
                db.string() +
                " were sealed with | put back the key they were sealed with (from your backup); "
                "nothing was changed. Without it every account must be authorized again (see "
                "\"The token key\" in operations.md)");
  EXPECT_EQ(std::filesystem::last_write_time(db), before);
  // The token store refuses it too, for whoever opens it directly.
  try {
    token_store store(settings().state_dir, load_token_key_file(file_, when_missing::fail));
    FAIL() << "the store opened with a wrong key";
  } catch (const token_key_error& e) {
    EXPECT_THAT(e.what(), HasSubstr(" is not the key the tokens in "));
  }
}

}  // namespace
}  // namespace oauth_relay::auth
