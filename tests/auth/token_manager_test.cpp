// The token manager against the fake endpoint over real TLS, with a real
// thread pool for its blocking calls: one refresh per account however many
// callers, refresh ahead of expiry, needs_reauth and the recovery when
// oauth-relayctl stores a new token, backoff after 503. (ThreadSanitizer runs these.)
#include "auth/token_manager.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>

#include "oauth_test_support.hpp"

namespace oauth_relay::auth {
namespace {

using std::chrono::milliseconds;
using testing::HasSubstr;
using testing::Not;
using testing_support::ask;
using testing_support::run_until;
using testing_support::test_cipher;

constexpr const char* alice = "alice@example.com";

class token_manager_test : public testing::Test {
 protected:
  void SetUp() override {
    options_.poll_interval = milliseconds(50);
    options_.retry_initial = milliseconds(500);  // longer than two gets under load
    options_.retry_max = milliseconds(2000);
    options_.connect_timeout = milliseconds(2000);
    options_.total_timeout = milliseconds(5000);
  }

  token_manager& manager() {
    if (!manager_) {
      manager_ = std::make_unique<token_manager>(io_.get_executor(), blocking_.get_executor(),
                                                 settings_, store_, http_, options_);
      manager_->on_state_change([this](const std::string& account, token_state state) {
        changes_.emplace_back(account, state);
      });
    }
    return *manager_;
  }

  token_result get(const std::string& account = alice) {
    std::optional<token_result> result;
    ask(io_, manager(), account, [&](token_result r) { result = std::move(r); });
    EXPECT_TRUE(run_until(io_, [&] { return result.has_value(); })) << "no answer";
    return result.value_or(token_result{});
  }

  account_status status_of(const std::string& account = alice) {
    for (auto& s : manager().status()) {
      if (s.address == account) return s;
    }
    ADD_FAILURE() << "no status for " << account;
    return {};
  }

  bool saw_change(token_state state) {
    return std::find(changes_.begin(), changes_.end(),
                     std::pair<std::string, token_state>(alice, state)) != changes_.end();
  }

  testing_support::oauth_env env_;
  config::settings settings_ = env_.settings();
  token_store store_{settings_.state_dir, test_cipher()};
  std::shared_ptr<http_client> http_ = std::make_shared<curl_http_client>();
  token_manager_options options_;
  boost::asio::io_context io_;
  // After the store and the loop: its threads end before they go.
  boost::asio::thread_pool blocking_{4};
  std::vector<std::pair<std::string, token_state>> changes_;
  std::unique_ptr<token_manager> manager_;  // last: stopped before the rest goes
};

TEST_F(token_manager_test, concurrent_callers_share_one_refresh) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  env_.fake.set_delay(milliseconds(200));  // all ten ask while the refresh is in flight

  std::vector<token_result> results;
  for (int i = 0; i < 10; ++i) {
    ask(io_, manager(), alice, [&](token_result r) { results.push_back(std::move(r)); });
  }
  ASSERT_TRUE(run_until(io_, [&] { return results.size() == 10; }));
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.access_token, results[0].access_token);
    EXPECT_EQ(r.state, token_state::valid);
  }
  EXPECT_EQ(env_.fake.token_requests(), 1u);
  EXPECT_TRUE(env_.fake.token_valid(alice, results[0].access_token));

  // Served from memory afterwards, and persisted.
  EXPECT_EQ(get().access_token, results[0].access_token);
  EXPECT_EQ(env_.fake.token_requests(), 1u);
  auto row = store_.get(alice);
  EXPECT_EQ(row->access_token, results[0].access_token);
  EXPECT_EQ(row->state, token_state::valid);
  auto status = status_of();
  EXPECT_EQ(status.state, token_state::valid);
  EXPECT_EQ(status.refreshes_ok, 1u);
  ASSERT_TRUE(status.access_expires_in_seconds);
  EXPECT_GE(*status.access_expires_in_seconds, 3590);
  EXPECT_LE(*status.access_expires_in_seconds, 3599);
}

TEST_F(token_manager_test, works_with_coroutines) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  std::optional<token_result> result;
  boost::asio::co_spawn(
      io_, [&]() -> boost::asio::awaitable<void> { result = co_await manager().get_token(alice); },
      boost::asio::detached);
  ASSERT_TRUE(run_until(io_, [&] { return result.has_value(); }));
  EXPECT_TRUE(result->ok) << result->error;
  EXPECT_TRUE(env_.fake.token_valid(alice, result->access_token));
}

TEST_F(token_manager_test, stored_token_is_served_unless_it_expires_within_a_minute) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  store_.store_access_token(alice, 1, "ya29.stored-long", now + 3000);
  {
    auto r = get();
    EXPECT_TRUE(r.ok);
    EXPECT_EQ(r.access_token, "ya29.stored-long");
    EXPECT_EQ(env_.fake.token_requests(), 0u);
  }
  manager_.reset();

  store_.store_access_token(alice, 1, "ya29.stored-short", now + 30);
  auto r = get();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NE(r.access_token, "ya29.stored-short");
  EXPECT_TRUE(env_.fake.token_valid(alice, r.access_token));
  EXPECT_EQ(env_.fake.refreshes_served(), 1u);
}

TEST_F(token_manager_test, refreshes_in_the_background_before_expiry) {
  env_.fake.add_account(alice, "1//alice");
  env_.fake.set_expires_in(std::chrono::seconds(2));
  store_.store_refresh_token(alice, "1//alice");
  manager().start();
  const auto first = get();
  ASSERT_TRUE(first.ok) << first.error;
  // Half the 2 s lifetime before expiry, without anyone asking.
  ASSERT_TRUE(run_until(
      io_, [&] { return env_.fake.refreshes_served() >= 2; }, milliseconds(3000)));
  EXPECT_TRUE(env_.fake.token_valid(alice, first.access_token)) << "refreshed too late";
  ASSERT_TRUE(run_until(
      io_, [&] { return get().access_token != first.access_token; }, milliseconds(1000)));
  const auto second = get();
  EXPECT_TRUE(env_.fake.token_valid(alice, second.access_token));
  EXPECT_LE(env_.fake.refreshes_served(), 3u) << "refreshing continuously";
}

TEST(needs_reauth_message, tells_testing_from_revocation_by_the_age_of_the_consent) {
  constexpr std::int64_t now = 1796025600;  // 2026-11-30T08:00:00Z
  constexpr std::int64_t day = 86400;
  // Eight days after consent: the consent screen's Testing status first.
  EXPECT_EQ(needs_reauth_message(alice, now - 8 * day, now),
            "account alice@example.com needs re-authorization: Google refused the refresh token "
            "of alice@example.com (invalid_grant) 8 days after it was authorized: the OAuth "
            "consent screen is in Testing, where refresh tokens expire after 7 days. To fix it, "
            "publish the consent screen (Google Auth Platform > Audience > Publish app: In "
            "production), then run: oauth-relayctl authorize alice@example.com");
  // Two days after: revoked.
  EXPECT_EQ(
      needs_reauth_message(alice, now - 2 * day, now)
          .rfind("account alice@example.com needs re-authorization: Google refused the refresh "
                 "token of alice@example.com (invalid_grant) 2 days after it was authorized, too "
                 "soon",
                 0),
      0u);
  // Not known (stored before the relay kept the time): both causes.
  EXPECT_EQ(needs_reauth_message(alice, std::nullopt, now), needs_reauth_message(alice));
}

TEST_F(token_manager_test, invalid_grant_means_needs_reauth_with_the_command_to_run) {
  store_.store_refresh_token(alice, "1//revoked-token");  // unknown to the endpoint
  auto r = get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.state, token_state::needs_reauth);
  EXPECT_EQ(r.access_token, "");
  EXPECT_EQ(r.error,
            "account alice@example.com needs re-authorization: Google refused the refresh token of "
            "alice@example.com (invalid_grant) 0 days after it was authorized, too soon for the 7 "
            "days of a "
            "consent screen in Testing: it was revoked (by the user at myaccount.google.com > "
            "Security, a password change, or an administrator). To fix it, run: oauth-relayctl "
            "authorize alice@example.com");
  EXPECT_EQ(status_of().state, token_state::needs_reauth);
  EXPECT_EQ(status_of().last_error, r.error);
  auto row = store_.get(alice);
  EXPECT_EQ(row->state, token_state::needs_reauth);
  EXPECT_EQ(row->last_error, r.error);

  // Answered at once from now on: no more requests to the endpoint.
  auto again = get();
  EXPECT_EQ(again.state, token_state::needs_reauth);
  EXPECT_EQ(again.error, r.error);
  EXPECT_EQ(env_.fake.token_requests(), 1u);
  ASSERT_TRUE(run_until(io_, [&] { return saw_change(token_state::needs_reauth); }));
}

TEST_F(token_manager_test, token_stored_by_oauth_relayctl_is_picked_up_without_restart) {
  store_.store_refresh_token(alice, "1//revoked-token");
  manager().start();
  ASSERT_EQ(get().state, token_state::needs_reauth);

  env_.fake.add_account(alice, "1//fresh-consent");
  {
    token_store ctl(settings_.state_dir,
                    test_cipher());  // another connection, as oauth-relayctl has
    ctl.store_refresh_token(alice, "1//fresh-consent");
  }
  ASSERT_TRUE(run_until(io_, [&] { return status_of().state == token_state::valid; }));
  ASSERT_TRUE(run_until(io_, [&] { return saw_change(token_state::valid); }));
  EXPECT_TRUE(saw_change(token_state::expired));  // needs_reauth -> expired -> valid
  EXPECT_EQ(status_of().last_error, "");
  auto r = get();
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_TRUE(env_.fake.token_valid(alice, r.access_token));
  EXPECT_EQ(env_.fake.refreshes_served(), 1u);  // the background refresh; get used it
  EXPECT_EQ(store_.get(alice)->state, token_state::valid);
}

TEST_F(token_manager_test, service_unavailable_backs_off_then_recovers) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  env_.fake.fail_with_503(true);
  manager().start();
  auto r = get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.state, token_state::refresh_failing);
  EXPECT_EQ(r.error, "account alice@example.com: token endpoint answered HTTP 503");
  EXPECT_EQ(status_of().state, token_state::refresh_failing);
  EXPECT_EQ(store_.get(alice)->refresh_failures, 1);

  // Within the backoff, callers are answered without another request.
  const auto requests = env_.fake.token_requests();
  EXPECT_EQ(get().state, token_state::refresh_failing);
  EXPECT_EQ(env_.fake.token_requests(), requests);

  env_.fake.fail_with_503(false);
  ASSERT_TRUE(run_until(io_, [&] { return status_of().state == token_state::valid; }));
  EXPECT_TRUE(saw_change(token_state::refresh_failing));
  auto ok = get();
  ASSERT_TRUE(ok.ok) << ok.error;
  EXPECT_TRUE(env_.fake.token_valid(alice, ok.access_token));
  auto row = store_.get(alice);
  EXPECT_EQ(row->refresh_failures, 0);
  EXPECT_EQ(row->last_error, "");
  EXPECT_EQ(status_of().refreshes_failed, static_cast<std::uint64_t>(requests));
}

TEST_F(token_manager_test, rotated_refresh_token_replaces_the_stored_one) {
  env_.fake.add_account(alice, "1//original");
  env_.fake.rotate_refresh_tokens(true);
  store_.store_refresh_token(alice, "1//original");
  manager().start();
  auto first = get();
  ASSERT_TRUE(first.ok) << first.error;
  const auto rotated = env_.fake.refresh_token_of(alice);
  ASSERT_TRUE(rotated);
  EXPECT_NE(*rotated, "1//original");
  auto row = store_.get(alice);
  EXPECT_EQ(row->refresh_token, *rotated);
  EXPECT_EQ(row->token_generation, 2);

  // Several polls later nothing mistook the rotation for a new consent...
  const auto polls = options_.poll_interval * 4;
  run_until(
      io_, [] { return false; }, polls);
  EXPECT_EQ(env_.fake.token_requests(), 1u);
  // ...and the next refresh uses the rotated token (the original is dead).
  manager().invalidate(alice, first.access_token);
  auto second = get();
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_NE(second.access_token, first.access_token);
  EXPECT_EQ(env_.fake.refreshes_served(), 2u);
  EXPECT_EQ(status_of().state, token_state::valid);
}

TEST_F(token_manager_test, invalidate_forgets_only_the_refused_token) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  auto first = get();
  ASSERT_TRUE(first.ok);
  manager().invalidate(alice, "ya29.some-older-token");
  EXPECT_EQ(get().access_token, first.access_token);
  EXPECT_EQ(env_.fake.token_requests(), 1u);

  manager().invalidate("ALICE@example.com", first.access_token);
  auto second = get();
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_NE(second.access_token, first.access_token);
  EXPECT_EQ(env_.fake.token_requests(), 2u);
}

TEST_F(token_manager_test, refused_client_waits_for_a_config_change) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  settings_.oauth.client_secret = "GOCSPX-wrong-secret";
  manager().start();
  auto r = get();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.state, token_state::refresh_failing);
  EXPECT_THAT(r.error, HasSubstr("wrong oauth.client_id or client secret"));
  EXPECT_THAT(r.error, Not(HasSubstr("GOCSPX-wrong-secret")));
  EXPECT_EQ(get().state, token_state::refresh_failing);
  EXPECT_EQ(env_.fake.token_requests(), 1u);

  manager().reconfigure(env_.settings());
  ASSERT_TRUE(run_until(io_, [&] { return status_of().state == token_state::valid; }));
  EXPECT_TRUE(get().ok);
}

TEST_F(token_manager_test, accounts_without_token_or_configuration) {
  auto missing = get("bob@example.com");
  EXPECT_FALSE(missing.ok);
  EXPECT_EQ(missing.state, token_state::missing);
  EXPECT_EQ(missing.error,
            "account bob@example.com has no refresh token: run \"oauth-relayctl authorize "
            "bob@example.com\"");
  EXPECT_EQ(status_of("bob@example.com").state, token_state::missing);
  EXPECT_FALSE(status_of("bob@example.com").access_expires_in_seconds);
  EXPECT_EQ(store_.get("bob@example.com")->state, token_state::missing);

  auto unknown = get("mallory@example.com");
  EXPECT_FALSE(unknown.ok);
  EXPECT_EQ(unknown.error, "account mallory@example.com is not configured");
  EXPECT_EQ(env_.fake.token_requests(), 0u);
}

TEST_F(token_manager_test, reconfigure_adds_and_removes_accounts) {
  env_.fake.add_account("carol@example.com", "1//carol");
  store_.store_refresh_token("carol@example.com", "1//carol");
  manager();
  auto s = env_.settings();
  s.accounts.erase(s.accounts.begin());  // alice goes
  config::account_settings carol;
  carol.address = "carol@example.com";
  s.accounts.push_back(carol);
  manager().reconfigure(s);
  auto r = get("carol@example.com");
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(get(alice).error, "account alice@example.com is not configured");
  std::vector<std::string> addresses;
  for (auto& st : manager().status()) addresses.push_back(st.address);
  EXPECT_THAT(addresses, testing::UnorderedElementsAre("bob@example.com", "carol@example.com"));
}

TEST_F(token_manager_test, delivery_time_is_recorded) {
  manager().record_delivery(alice, 1700000000);
  EXPECT_EQ(status_of().last_delivery, 1700000000);
  manager().stop();  // the write asked for still happens
  ASSERT_TRUE(run_until(io_, [&] { return store_.get(alice)->last_delivery == 1700000000; }));
}

TEST_F(token_manager_test, a_burst_of_deliveries_stores_the_newest_time) {
  // A drain reports thousands of deliveries a second: one store write at a
  // time, the newest second last, and an earlier report never goes back.
  for (int i = 0; i < 3000; ++i) manager().record_delivery(alice, 1700000000 + i / 1000);
  manager().record_delivery(alice, 1699999999);
  EXPECT_EQ(status_of().last_delivery, 1700000002);
  ASSERT_TRUE(run_until(io_, [&] { return store_.get(alice)->last_delivery == 1700000002; }));
  manager().record_delivery(alice, 1700000003);
  ASSERT_TRUE(run_until(io_, [&] { return store_.get(alice)->last_delivery == 1700000003; }));
  // A stop while a write is on its way still leaves the newest second stored.
  manager().record_delivery(alice, 1700000004);
  manager().record_delivery(alice, 1700000005);
  manager().stop();
  ASSERT_TRUE(run_until(io_, [&] { return store_.get(alice)->last_delivery == 1700000005; }));
}

TEST_F(token_manager_test, stop_abandons_a_slow_refresh_and_answers_the_caller) {
  env_.fake.add_account(alice, "1//alice");
  store_.store_refresh_token(alice, "1//alice");
  env_.fake.set_delay(milliseconds(4000));
  std::optional<token_result> result;
  ask(io_, manager(), alice, [&](token_result r) { result = std::move(r); });
  ASSERT_TRUE(run_until(io_, [&] { return env_.fake.requests_in_flight() == 1; }));
  const auto start = std::chrono::steady_clock::now();
  manager().stop();
  ASSERT_TRUE(run_until(io_, [&] { return result.has_value(); }));
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->error, "token manager stopped");
  // The transfer is abandoned rather than waited for, and its end ignored.
  blocking_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(3500));
  io_.restart();
  io_.poll();
  EXPECT_EQ(store_.get(alice)->refresh_failures, 0);  // a shutdown is not a failure
  EXPECT_EQ(status_of().state, token_state::expired);
  EXPECT_EQ(status_of().refreshes_failed, 0u);
}

TEST_F(token_manager_test, secrets_never_appear_in_errors_status_or_logs) {
  env_.fake.add_account(alice, "1//alice-refresh-secret");
  store_.store_refresh_token(alice, "1//alice-refresh-secret");
  store_.store_refresh_token("bob@example.com", "1//bob-revoked-secret");
  testing::internal::CaptureStderr();
  std::vector<std::string> texts;
  std::vector<std::string> access_tokens;
  {
    auto ok = get(alice);
    ASSERT_TRUE(ok.ok);
    access_tokens.push_back(ok.access_token);
    texts.push_back(get("bob@example.com").error);  // invalid_grant
    manager().invalidate(alice, ok.access_token);
    env_.fake.fail_with_503(true);
    texts.push_back(get(alice).error);  // 503
  }
  for (auto& s : manager().status()) texts.push_back(s.last_error);
  manager_.reset();
  settings_.oauth.client_secret = "GOCSPX-wrong-secret";
  env_.fake.fail_with_503(false);
  store_.store_refresh_token(alice, "1//alice-refresh-secret");
  texts.push_back(get(alice).error);  // invalid_client
  for (auto& s : manager().status()) texts.push_back(s.last_error);
  manager_.reset();
  for (const auto& row : store_.load_all()) texts.push_back(row.last_error);
  const std::string logs = testing::internal::GetCapturedStderr();

  EXPECT_THAT(logs, HasSubstr("event=token_refreshed account=alice@example.com expires_in=3599"));
  EXPECT_THAT(logs, HasSubstr("event=token_refresh_failed account=bob@example.com"));
  EXPECT_THAT(logs, HasSubstr("event=token_refresh_failed account=alice@example.com"));
  texts.push_back(logs);
  int non_empty = 0;
  for (const auto& text : texts) {
    non_empty += !text.empty();
    for (const std::string& secret :
         {std::string("1//alice-refresh-secret"), std::string("1//bob-revoked-secret"),
          env_.fake.client_secret(), std::string("GOCSPX-wrong-secret"), access_tokens[0],
          std::string("ya29.")}) {
      EXPECT_THAT(text, Not(HasSubstr(secret)));
    }
  }
  EXPECT_GE(non_empty, 6);
}

}  // namespace
}  // namespace oauth_relay::auth
