// The token manager on a stand-in token endpoint without threads: one
// io_context is its loop and its blocking executor, run by the test itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "auth/token_manager.hpp"
#include "common/clock.hpp"
#include "oauth_test_support.hpp"
#include "scripted_http_client.hpp"

namespace oauth_relay::auth {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::ElementsAre;
using testing::HasSubstr;
using testing::Not;
using testing_support::ask;
using testing_support::run_until;
using testing_support::scripted_http_client;
using testing_support::test_cipher;
using changes = token_manager::changes;

constexpr const char* alice = "alice@example.com";
constexpr const char* bob = "bob@example.com";
constexpr const char* token_url = "https://oauth2.stand-in.example/token";
constexpr const char* client_secret = "GOCSPX-stand-in-secret";

config::settings settings_in(const std::filesystem::path& dir) {
  config::settings s;
  s.state_dir = dir / "state";
  s.oauth.client_id = "stand-in.apps.googleusercontent.com";
  s.oauth.client_secret = client_secret;
  s.oauth.token_url = token_url;
  s.oauth.auth_url = "https://accounts.stand-in.example/auth";
  config::account_settings a;
  a.address = alice;
  a.senders = {alice};
  config::account_settings b;
  b.address = bob;
  b.is_default = true;
  s.accounts = {a, b};
  return s;
}

// A manager, its store and the stand-in endpoint, all on `io`.
struct rig {
  testing_support::temp_dir dir;
  config::settings settings = settings_in(dir.path());
  token_store store{settings.state_dir, test_cipher()};
  std::shared_ptr<scripted_http_client> http = std::make_shared<scripted_http_client>();
  token_manager_options options;
  boost::asio::io_context io;
  std::vector<token_state> alice_changes;
  std::unique_ptr<token_manager> tokens;  // last: stopped before the rest goes

  token_manager& manager() {
    if (!tokens) {
      tokens = std::make_unique<token_manager>(io.get_executor(), io.get_executor(), settings,
                                               store, http, options);
      tokens->on_state_change([this](const std::string& account, token_state state) {
        if (account == alice) alice_changes.push_back(state);
      });
    }
    return *tokens;
  }

  token_result get(const std::string& account = alice) {
    std::optional<token_result> result;
    ask(io, manager(), account, [&](token_result r) { result = std::move(r); });
    EXPECT_TRUE(run_until(io, [&] { return result.has_value(); })) << "no answer";
    return result.value_or(token_result{});
  }

  account_status status_of(const std::string& account = alice) {
    for (auto& s : manager().status()) {
      if (s.address == account) return s;
    }
    ADD_FAILURE() << "no status for " << account;
    return {};
  }

  std::size_t requests() const { return http->requests().size(); }

  // As oauth-relayctl authorize does it: through its own connection.
  void ctl_store(const std::string& account, const std::string& refresh_token) {
    token_store ctl(settings.state_dir, test_cipher());
    ctl.store_refresh_token(account, refresh_token);
  }

  // Lets the loop run for `d` when the test waits for nothing to happen.
  void idle(milliseconds d) {
    run_until(
        io, [] { return false; }, d);
  }
};

class token_manager_loop_test : public testing::Test {
 protected:
  void TearDown() override {
    for (const auto& request : r.http->requests()) {
      EXPECT_EQ(request.thread, std::this_thread::get_id()) << "the endpoint was asked elsewhere";
    }
  }
  rig r;
};

// The `failures` and `retry_in_ms` of each token_refresh_failed line, in order.
std::vector<std::pair<int, long>> retries_logged(const std::string& logs) {
  static const std::regex line(
      "event=token_refresh_failed account=alice@example\\.com [^\\n]* failures=(\\d+) "
      "retry_in_ms=(\\d+)");
  std::vector<std::pair<int, long>> out;
  for (std::sregex_iterator it(logs.begin(), logs.end(), line), end; it != end; ++it) {
    out.emplace_back(std::stoi((*it)[1]), std::stol((*it)[2]));
  }
  return out;
}

TEST_F(token_manager_loop_test, concurrent_callers_share_one_refresh) {
  r.store.store_refresh_token(alice, "1//alice");
  std::vector<token_result> results;
  for (int i = 0; i < 10; ++i) {
    ask(r.io, r.manager(), alice, [&](token_result t) { results.push_back(std::move(t)); });
  }
  ASSERT_TRUE(run_until(r.io, [&] { return results.size() == 10; }));
  for (const auto& t : results) {
    EXPECT_TRUE(t.ok) << t.error;
    EXPECT_EQ(t.access_token, "ya29.stand-in-1");
    EXPECT_EQ(t.state, token_state::valid);
  }
  ASSERT_EQ(r.requests(), 1u);
  const auto& request = r.http->requests()[0];
  EXPECT_EQ(request.url, token_url);
  EXPECT_EQ(request.fields.at("grant_type"), "refresh_token");
  EXPECT_EQ(request.fields.at("refresh_token"), "1//alice");
  EXPECT_EQ(request.fields.at("client_id"), "stand-in.apps.googleusercontent.com");
  EXPECT_EQ(request.fields.at("client_secret"), client_secret);

  // Served from memory afterwards, and persisted.
  EXPECT_EQ(r.get().access_token, "ya29.stand-in-1");
  EXPECT_EQ(r.requests(), 1u);
  const auto row = r.store.get(alice);
  EXPECT_EQ(row->access_token, "ya29.stand-in-1");
  EXPECT_EQ(row->state, token_state::valid);
  EXPECT_EQ(row->token_generation, 1);
  const auto status = r.status_of();
  EXPECT_EQ(status.state, token_state::valid);
  EXPECT_EQ(status.refreshes_ok, 1u);
  ASSERT_TRUE(status.access_expires_in_seconds);
  EXPECT_GE(*status.access_expires_in_seconds, 3590);
  EXPECT_LE(*status.access_expires_in_seconds, 3599);
  r.idle(milliseconds(50));
  EXPECT_THAT(r.alice_changes, ElementsAre(token_state::valid));
}

TEST_F(token_manager_loop_test, a_stored_token_is_served_unless_it_expires_within_min_validity) {
  r.store.store_refresh_token(alice, "1//alice");
  r.store.store_access_token(alice, 1, "ya29.stored-long", now_seconds() + 3000);
  EXPECT_EQ(r.get().access_token, "ya29.stored-long");
  EXPECT_EQ(r.requests(), 0u);
  r.tokens.reset();

  r.store.store_access_token(alice, 1, "ya29.stored-short", now_seconds() + 30);  // < 60 s
  const auto t = r.get();
  EXPECT_TRUE(t.ok) << t.error;
  EXPECT_EQ(t.access_token, "ya29.stand-in-1");
  EXPECT_EQ(r.requests(), 1u);
}

TEST_F(token_manager_loop_test, refreshes_ahead_of_expiry_on_timers_without_a_caller) {
  r.store.store_refresh_token(alice, "1//alice");
  // Valid for 200 s: enough for a caller (min_validity 60 s), but within refresh_ahead (300 s).
  r.store.store_access_token(alice, 1, "ya29.stored", now_seconds() + 200);
  std::chrono::system_clock::time_point first_granted, second_asked;
  r.http->then_run([&](const auto&, const auto&) {
    first_granted = std::chrono::system_clock::now();
    return scripted_http_client::granted("ya29.first", 6);
  });
  r.http->then_run([&](const auto&, const auto&) {
    second_asked = std::chrono::system_clock::now();
    return scripted_http_client::granted("ya29.second", 3599);
  });
  r.manager().start();

  ASSERT_TRUE(run_until(r.io, [&] { return r.status_of().refreshes_ok == 1; }));
  EXPECT_EQ(r.requests(), 1u);
  EXPECT_EQ(r.get().access_token, "ya29.first");  // from memory: 6 s left, leads are halved
  EXPECT_EQ(r.requests(), 1u);

  // A 6 s token is refreshed after half its lifetime, by the timer alone.
  ASSERT_TRUE(run_until(
      r.io, [&] { return r.status_of().refreshes_ok == 2; }, milliseconds(20'000)));
  EXPECT_EQ(r.requests(), 2u);
  EXPECT_GE(second_asked - first_granted, milliseconds(2500)) << "not half the lifetime";
  EXPECT_LT(second_asked - first_granted, seconds(6)) << "refreshed after expiry";
  EXPECT_EQ(r.get().access_token, "ya29.second");
  EXPECT_EQ(r.store.get(alice)->access_token, "ya29.second");
  // Nothing more is due for the better part of an hour.
  r.idle(milliseconds(200));
  EXPECT_EQ(r.requests(), 2u);
}

TEST_F(token_manager_loop_test, invalid_grant_needs_reauth_until_oauth_relayctl_stores_a_token) {
  r.options.poll_interval = milliseconds(20);
  r.store.store_refresh_token(alice, "1//revoked");
  r.http->then_answer(
      scripted_http_client::refused(400, "invalid_grant", "Token has been expired or revoked."));
  r.manager().start();
  testing::internal::CaptureStderr();
  const auto t = r.get();
  const auto again = r.get();
  const std::string refused_logs = testing::internal::GetCapturedStderr();

  const std::string message =
      "account alice@example.com needs re-authorization: Google refused the refresh token of "
      "alice@example.com (invalid_grant) 0 days after it was authorized, too soon for the 7 days "
      "of a "
      "consent screen in Testing: it was revoked (by the user at myaccount.google.com > "
      "Security, a password change, or an administrator). To fix it, run: oauth-relayctl "
      "authorize alice@example.com";
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.state, token_state::needs_reauth);
  EXPECT_EQ(t.access_token, "");
  EXPECT_EQ(t.error, message);
  EXPECT_EQ(again.error, message);  // at once: no second request
  EXPECT_EQ(r.requests(), 1u);
  EXPECT_EQ(r.status_of().state, token_state::needs_reauth);
  EXPECT_EQ(r.status_of().last_error, message);
  EXPECT_EQ(r.store.get(alice)->state, token_state::needs_reauth);
  EXPECT_EQ(r.store.get(alice)->last_error, message);
  EXPECT_THAT(refused_logs,
              HasSubstr("<3>event=token_refresh_failed account=alice@example.com "
                        "state=needs_reauth reason=\"token endpoint refused the refresh token: "
                        "invalid_grant (Token has been expired or revoked.), HTTP 400\" "
                        "hint=\"run \\\"oauth-relayctl authorize alice@example.com\\\"\""));

  testing::internal::CaptureStderr();
  r.ctl_store(alice, "1//fresh-consent");
  const bool recovered = run_until(r.io, [&] { return r.status_of().state == token_state::valid; });
  const std::string stored_logs = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(recovered);
  ASSERT_EQ(r.requests(), 2u);
  EXPECT_EQ(r.http->requests()[1].fields.at("refresh_token"), "1//fresh-consent");
  EXPECT_THAT(stored_logs, HasSubstr("<5>event=token_stored account=alice@example.com "
                                     "generation=2 state=expired"));
  EXPECT_EQ(r.status_of().last_error, "");
  EXPECT_EQ(r.get().access_token, "ya29.stand-in-1");
  r.idle(milliseconds(50));
  EXPECT_THAT(r.alice_changes,
              ElementsAre(token_state::needs_reauth, token_state::expired, token_state::valid));
}

TEST_F(token_manager_loop_test, service_unavailable_is_not_asked_again_within_the_backoff) {
  r.options.retry_initial = std::chrono::hours(1);
  r.options.retry_max = std::chrono::hours(2);
  r.store.store_refresh_token(alice, "1//alice");
  r.http->otherwise_answer(scripted_http_client::unavailable());
  const auto t = r.get();
  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.state, token_state::refresh_failing);
  EXPECT_EQ(t.error, "account alice@example.com: token endpoint answered HTTP 503");
  const auto row = r.store.get(alice);
  EXPECT_EQ(row->state, token_state::refresh_failing);
  EXPECT_EQ(row->refresh_failures, 1);
  EXPECT_EQ(row->last_error, "token endpoint answered HTTP 503");

  EXPECT_EQ(r.get().error, t.error);
  r.manager().start();
  r.idle(milliseconds(200));
  EXPECT_EQ(r.get().error, t.error);
  EXPECT_EQ(r.requests(), 1u);
  EXPECT_EQ(r.status_of().refreshes_failed, 1u);
}

TEST_F(token_manager_loop_test, retries_back_off_exactly_as_configured) {
  r.options.retry_initial = milliseconds(20);
  r.options.retry_max = milliseconds(70);
  r.store.store_refresh_token(alice, "1//alice");
  for (int i = 0; i < 4; ++i) r.http->then_answer(scripted_http_client::unavailable());
  testing::internal::CaptureStderr();
  r.manager().start();
  const bool recovered = run_until(r.io, [&] { return r.status_of().state == token_state::valid; });
  const std::string logs = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(recovered);

  // Doubling from retry_initial, capped at retry_max, counted from the first failure.
  EXPECT_THAT(retries_logged(logs), ElementsAre(std::pair(1, 20L), std::pair(2, 40L),
                                                std::pair(3, 70L), std::pair(4, 70L)));
  EXPECT_THAT(logs, HasSubstr("<4>event=token_refresh_failed account=alice@example.com "
                              "state=refresh_failing reason=\"token endpoint answered HTTP "
                              "503\" failures=1 retry_in_ms=20"));
  EXPECT_EQ(r.requests(), 5u);
  const auto row = r.store.get(alice);
  EXPECT_EQ(row->refresh_failures, 0);
  EXPECT_EQ(row->last_error, "");
  EXPECT_EQ(r.status_of().refreshes_failed, 4u);
  EXPECT_EQ(r.status_of().refreshes_ok, 1u);
  r.idle(milliseconds(50));
  EXPECT_THAT(r.alice_changes, ElementsAre(token_state::refresh_failing, token_state::valid));
}

TEST_F(token_manager_loop_test, refused_client_pauses_until_the_settings_change) {
  r.options.retry_initial = milliseconds(10);
  r.options.retry_max = std::chrono::hours(1);
  r.store.store_refresh_token(alice, "1//alice");
  r.http->then_answer(
      scripted_http_client::refused(401, "invalid_client", "The OAuth client was not found."));
  r.manager().start();
  testing::internal::CaptureStderr();
  const auto t = r.get();
  const auto again = r.get();
  r.idle(milliseconds(300));  // many times retry_initial
  const std::string logs = testing::internal::GetCapturedStderr();

  EXPECT_FALSE(t.ok);
  EXPECT_EQ(t.state, token_state::refresh_failing);
  EXPECT_EQ(t.error,
            "account alice@example.com: token endpoint refused the OAuth client: invalid_client "
            "(The OAuth client was not found.), HTTP 401: wrong oauth.client_id or client secret");
  EXPECT_EQ(again.error, t.error);
  EXPECT_EQ(r.requests(), 1u);
  // An error, not a warning, and a pause of retry_max rather than a backoff.
  EXPECT_THAT(retries_logged(logs), ElementsAre(std::pair(1, 3'600'000L)));
  EXPECT_THAT(logs, HasSubstr("<3>event=token_refresh_failed account=alice@example.com"));
  EXPECT_THAT(logs, Not(HasSubstr(client_secret)));

  auto fixed = r.settings;
  fixed.oauth.client_secret = "GOCSPX-the-right-one";
  r.manager().reconfigure(fixed);
  ASSERT_TRUE(run_until(r.io, [&] { return r.status_of().state == token_state::valid; }));
  ASSERT_EQ(r.requests(), 2u);
  EXPECT_EQ(r.http->requests()[1].fields.at("client_secret"), "GOCSPX-the-right-one");
  EXPECT_TRUE(r.get().ok);
}

TEST_F(token_manager_loop_test, stop_answers_waiting_callers_and_abandons_the_request) {
  r.store.store_refresh_token(alice, "1//alice");
  bool cancel_seen = false;
  r.http->then_run([&](const auto&, const http_options& options) {
    // oauth-relayd stops while the endpoint has not answered yet.
    r.manager().stop();
    cancel_seen = options.cancel != nullptr && options.cancel->load();
    return http_response{0, "", "cancelled"};  // what libcurl reports then
  });
  std::vector<token_result> results;
  testing::internal::CaptureStderr();
  for (int i = 0; i < 2; ++i) {
    ask(r.io, r.manager(), alice, [&](token_result t) { results.push_back(std::move(t)); });
  }
  const bool answered = run_until(r.io, [&] { return results.size() == 2; });
  r.idle(milliseconds(50));
  const std::string logs = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(answered);
  EXPECT_TRUE(cancel_seen);
  for (const auto& t : results) {
    EXPECT_FALSE(t.ok);
    EXPECT_EQ(t.error, "token manager stopped");
  }
  // A shutdown is not a refresh failure.
  EXPECT_THAT(logs, Not(HasSubstr("token_refresh_failed")));
  EXPECT_EQ(r.store.get(alice)->refresh_failures, 0);
  EXPECT_EQ(r.store.get(alice)->state, token_state::expired);
  EXPECT_EQ(r.status_of().refreshes_failed, 0u);

  EXPECT_EQ(r.get().error, "token manager stopped");
  EXPECT_EQ(r.requests(), 1u);
}

// The endpoint rotates the refresh token, so the manager's own write bumps the
// stored generation just as a new consent stored by oauth-relayctl does.
// Whenever the poll reads the row (before the request, during it, after the
// write reached the database but before its result reached the loop, after
// it), it must not take that write for oauth-relayctl's.
TEST(token_manager_poll, never_takes_the_managers_own_write_for_oauth_relayctls) {
  bool read_between_write_and_result = false;
  testing::internal::CaptureStderr();
  for (int at = 0;; ++at) {
    SCOPED_TRACE("poll at step " + std::to_string(at));
    rig r;
    r.options.poll_interval = std::chrono::hours(1);  // only reload() polls
    r.store.store_refresh_token(alice, "1//original");
    r.http->then_answer(scripted_http_client::granted("ya29.first", 3599, "1//rotated"));
    std::optional<token_result> got;
    std::optional<changes> reloaded;
    ask(r.io, r.manager(), alice, [&](token_result t) { got = std::move(t); });
    auto poll_now = [&] {
      if (r.store.get(alice)->token_generation == 2 && r.status_of().state != token_state::valid) {
        read_between_write_and_result = true;
      }
      r.manager().reload([&](changes c) { reloaded = std::move(c); });
    };
    // One handler at a time; the poll at step `at`, or once all is done.
    bool ran_out = false;
    for (int step = 0;; ++step) {
      if (step == at) {
        poll_now();
        break;
      }
      r.io.restart();
      if (r.io.poll_one() == 0) {
        ran_out = true;
        poll_now();
        break;
      }
    }
    if (!run_until(r.io, [&] { return got && reloaded; })) {
      ADD_FAILURE() << "no answer";
      break;
    }
    r.io.restart();
    r.io.poll();
    EXPECT_TRUE(got->ok) << got->error;
    EXPECT_EQ(got->access_token, "ya29.first");
    EXPECT_TRUE(reloaded->empty());
    EXPECT_THAT(r.alice_changes, ElementsAre(token_state::valid));
    EXPECT_EQ(r.store.get(alice)->token_generation, 2);
    // The next refresh uses the rotated token.
    r.manager().invalidate(alice, "ya29.first");
    EXPECT_EQ(r.get().access_token, "ya29.stand-in-1");
    EXPECT_EQ(r.requests(), 2u);
    EXPECT_EQ(r.http->requests().back().fields.at("refresh_token"), "1//rotated");
    if (ran_out || testing::Test::HasFailure()) break;
  }
  const std::string logs = testing::internal::GetCapturedStderr();
  EXPECT_THAT(logs, Not(HasSubstr("event=token_stored")));
  EXPECT_TRUE(read_between_write_and_result) << "no step fell between the write and its result";
}

TEST_F(token_manager_loop_test, a_token_stored_by_oauth_relayctl_during_a_refresh_wins) {
  r.store.store_refresh_token(alice, "1//old");
  r.http->then_run([&](const auto&, const auto&) {
    r.ctl_store(alice, "1//new-consent");  // the user authorizes again meanwhile
    return scripted_http_client::granted("ya29.for-the-old-grant", 3599);
  });
  testing::internal::CaptureStderr();
  const auto t = r.get();
  const std::string logs = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(t.ok) << t.error;
  EXPECT_EQ(t.access_token, "ya29.stand-in-1");
  ASSERT_EQ(r.requests(), 2u);
  EXPECT_EQ(r.http->requests()[0].fields.at("refresh_token"), "1//old");
  EXPECT_EQ(r.http->requests()[1].fields.at("refresh_token"), "1//new-consent");
  const auto row = r.store.get(alice);
  EXPECT_EQ(row->refresh_token, "1//new-consent");
  EXPECT_EQ(row->access_token, "ya29.stand-in-1");
  EXPECT_EQ(row->token_generation, 2);
  EXPECT_THAT(logs,
              HasSubstr("event=token_stored account=alice@example.com generation=2 state=expired"));
}

}  // namespace
}  // namespace oauth_relay::auth
