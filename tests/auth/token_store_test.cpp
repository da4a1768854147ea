// The accounts table: round trips, the generation rule that lets
// oauth-relayctl's writes win over a refresh in flight, and sharing the
// spool's database file.
#include "auth/token_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "oauth_test_support.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::auth {
namespace {

using testing_support::temp_dir;

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
  token_store store(state_);
  EXPECT_EQ(mode_of(state_), 0700u);
  EXPECT_EQ(mode_of(state_ / "queue.db"), 0600u);
  EXPECT_TRUE(store.load_all().empty());
}

TEST_F(token_store_test, ensure_accounts_adds_missing_rows_once_ignoring_case) {
  token_store store(state_);
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
  token_store store(state_);
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
  token_store store(state_);
  EXPECT_EQ(store.store_refresh_token("carol@example.com", "1//c"), 1);
  auto row = store.get("carol@example.com");
  ASSERT_TRUE(row);
  EXPECT_EQ(row->state, token_state::expired);
  EXPECT_EQ(row->refresh_token, "1//c");
}

TEST_F(token_store_test, access_token_applies_only_under_the_same_generation) {
  token_store store(state_);
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
  token_store store(state_);
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
  token_store store(state_);
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
  token_store store(state_);
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
  token_store store(state_);
  store.ensure_accounts({account("alice@example.com")});
  store.record_delivery("alice@example.com", 1700000000);
  EXPECT_EQ(store.get("alice@example.com")->last_delivery, 1700000000);
}

TEST_F(token_store_test, another_connection_sees_writes_like_oauth_relayctl_would) {
  token_store daemon(state_);
  daemon.ensure_accounts({account("alice@example.com")});
  {
    token_store ctl(state_);
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
  token_store store(state_);
  store.store_refresh_token("alice@example.com", "1//x");
  token_store reopened(state_);
  EXPECT_EQ(reopened.get("alice@example.com")->refresh_token, "1//x");
  EXPECT_EQ(mode_of(state_ / "queue.db"), 0600u);
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
