// Crash safety: oauth-relayd is SIGKILLed again and again while applications
// send mail to it and it delivers to the fake Gmail (slow replies) with
// short-lived tokens from a slow fake token endpoint, restarted each time on
// the same state_dir. Afterwards every message that got a 250 must have
// arrived with its exact bytes; a message may arrive twice only when a kill
// fell between Gmail taking it and the relay recording that.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "db/sqlite.hpp"
#include "integration/support/google_fakes.hpp"
#include "integration/support/mail_load.hpp"
#include "integration/support/relay_process.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

using namespace std::chrono_literals;

// The queue's kept figures (queue_counts, kept by triggers) and a recount of
// the rows, as "depth deferred" each, read while the relay is dead.
std::pair<std::string, std::string> kept_and_counted(const std::filesystem::path& state_dir) {
  db::connection db(state_dir / "queue.db", SQLITE_OPEN_READWRITE);
  auto read = [&](const char* sql) {
    db::statement st(db, sql);
    return st.step() ? st.text(0) : std::string("no row");
  };
  return {read("SELECT messages || ' ' || deferred FROM queue_counts"),
          read("SELECT count(*) || ' ' || count(CASE WHEN attempts > 0 THEN 1 END) "
               "FROM messages")};
}

// Polls `condition` every few milliseconds; false when `timeout` passed first.
template <typename Condition>
bool wait_until(Condition condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

struct crash_plan {
  std::size_t messages = 300;
  int kills = 5;
  int drain_kills = 1;  // of `kills`, after the load: only delivery is going on
  int sessions = 4;
  std::size_t large_every = 60;  // messages above the spool's memory limit go to files
  std::chrono::seconds timeout{120};
};

// Where a kill is aimed; the counts say how many landed there.
enum kill_mode { at_random, mid_delivery, mid_refresh, after_restart, kill_modes };
constexpr const char* kill_mode_names[] = {"random", "mid_delivery", "mid_refresh",
                                           "after_restart"};

void run_crash_test(const crash_plan& plan) {
  const auto started = std::chrono::steady_clock::now();
  unsigned seed = std::random_device{}();
  if (const char* s = std::getenv("OAUTH_RELAY_CRASH_SEED"))
    seed = static_cast<unsigned>(std::stoul(s));
  std::mt19937 random(seed);
  std::cout << "crash test seed=" << seed << " (OAUTH_RELAY_CRASH_SEED repeats a run)\n";

  google_fakes google;
  // Tokens live 4 s, so the relay refreshes every 2 s, and each refresh takes 300 ms.
  google.oauth().set_expires_in(4s);
  google.oauth().set_delay(300ms);
  // Every Gmail reply waits: a delivery is a few tens of milliseconds in flight.
  google.gmail().set_reply_delay(5ms);
  relay_process relay(google.config("queue:\n  retry_initial: 1s\n  retry_max: 2s\n"));
  google.store_token(relay.state_dir(), relay.key_file());
  relay.start();
  std::atomic<std::uint16_t> port{relay.port()};

  mail_load_options options;
  options.prefix = "crash";
  options.sessions = plan.sessions;
  options.target = plan.messages;
  options.large_every = plan.large_every;
  mail_load load(options, [&port] { return port.load(); });

  int aimed[kill_modes] = {};
  int landed[kill_modes] = {};
  std::vector<std::size_t> boundaries;  // Gmail's message count at each kill
  const int load_kills = plan.kills - plan.drain_kills;
  bool just_restarted = false;
  for (int k = 0; k < plan.kills; ++k) {
    auto mode = static_cast<kill_mode>(k % kill_modes);
    if (k < load_kills) {
      // Spread over the load: kill k once its share of the messages is in.
      const std::size_t threshold = (static_cast<std::size_t>(k) + 1) * plan.messages /
                                    (static_cast<std::size_t>(load_kills) + 1);
      ASSERT_TRUE(wait_until([&] { return load.accepted() >= threshold; }, plan.timeout))
          << "the load stalled at " << load.accepted() << " accepted\n"
          << relay.log();
    } else {
      ASSERT_TRUE(load.wait(plan.timeout)) << relay.log();
      if (mode == after_restart || mode == mid_refresh) mode = mid_delivery;
    }
    if (mode == after_restart && !just_restarted) mode = at_random;
    ++aimed[mode];
    bool hit = true;
    switch (mode) {
      case at_random:
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 200));
        break;
      case mid_delivery:
        hit = wait_until([&] { return google.gmail().transactions_open() > 0; }, 5s);
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 3));
        hit = google.gmail().transactions_open() > 0;
        break;
      case mid_refresh:
        hit = wait_until([&] { return google.oauth().requests_in_flight() > 0; }, 5s);
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 100));
        hit = google.oauth().requests_in_flight() > 0;
        break;
      case after_restart:
        std::this_thread::sleep_for(std::chrono::milliseconds(random() % 30));
        break;
      case kill_modes:
        break;
    }
    if (hit) ++landed[mode];
    relay.kill9();
    // What the dead relay had sent completely may still be taken by Gmail;
    // the boundary is drawn once Gmail has seen every connection close.
    wait_until([&] { return google.gmail().transactions_open() == 0; }, 5s);
    boundaries.push_back(google.message_count());
    const auto [kept, counted] = kept_and_counted(relay.state_dir());
    EXPECT_EQ(kept, counted) << "after kill " << k;
    relay.start();
    port = relay.port();
    just_restarted = true;
  }
  ASSERT_TRUE(load.wait(plan.timeout)) << relay.log();
  load.stop();

  // Drain: once the spool is empty nothing more will be sent.
  const bool drained = wait_until(
      [&] {
        relay::spool_reader reader(relay.state_dir());
        return reader.messages().value().empty();
      },
      std::chrono::duration_cast<std::chrono::milliseconds>(plan.timeout));
  if (!drained) {
    relay::spool_reader reader(relay.state_dir());
    for (const auto& m : reader.messages().value())
      std::cerr << "still queued " << m.id << " attempts=" << m.attempts
                << " error=" << m.last_error << "\n";
  }
  EXPECT_TRUE(drained) << relay.log();
  EXPECT_EQ(relay.stop(SIGTERM), 0);

  // Check every message that arrived against what was sent.
  const auto records = load.records();
  const auto delivered = google.messages();
  std::map<std::string, std::vector<std::size_t>> copies;  // tag -> positions at Gmail
  std::size_t corrupted = 0;
  std::map<std::string, std::string> expected;  // tag -> content, computed once
  for (std::size_t i = 0; i < delivered.size(); ++i) {
    const auto& m = delivered[i];
    const std::string tag = tag_of(m.content);
    const auto record = records.find(tag);
    if (record == records.end()) {
      ++corrupted;
      ADD_FAILURE() << "a message that was never sent arrived:\n" << m.content.substr(0, 400);
      continue;
    }
    copies[tag].push_back(i);
    auto& want = expected[tag];
    if (want.empty()) want = make_test_message(tag, record->second.size).content;
    if (without_received(m.content) != want || m.sender != google_fakes::account ||
        m.recipients != std::vector<std::string>{"rcpt@example.org"}) {
      ++corrupted;
      ADD_FAILURE() << tag << " arrived altered (" << m.content.size() << " octets, expected "
                    << want.size() << " after the Received header)";
    }
  }
  std::size_t accepted = 0, unacknowledged = 0, unacknowledged_arrived = 0, refused = 0, lost = 0,
              duplicates = 0, messages_repeated = 0;
  for (const auto& [tag, record] : records) {
    const auto found = copies.find(tag);
    const std::size_t n = found == copies.end() ? 0 : found->second.size();
    switch (record.result) {
      case mail_load::outcome::accepted:
        ++accepted;
        if (n == 0) {
          ++lost;
          ADD_FAILURE() << tag << " got a 250 and never arrived";
        }
        break;
      case mail_load::outcome::unknown:
        ++unacknowledged;
        if (n > 0) ++unacknowledged_arrived;
        break;
      case mail_load::outcome::refused:
        ++refused;
        EXPECT_EQ(n, 0u) << tag << " was refused with " << record.code << " and still sent";
        break;
    }
    if (n > 1) {
      duplicates += n - 1;
      ++messages_repeated;
      // Each repeat must straddle a kill: the copy before it went out before
      // some kill, the repeat after it.
      for (std::size_t c = 1; c < n; ++c) {
        const auto before = found->second[c - 1], after = found->second[c];
        bool straddles = false;
        for (auto b : boundaries) straddles = straddles || (before < b && b <= after);
        EXPECT_TRUE(straddles) << tag << " arrived twice without a kill in between (positions "
                               << before << " and " << after << ")";
      }
      EXPECT_LE(n, boundaries.size() + 1) << tag;
    }
  }

  const auto seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::ostringstream line;
  line << "crash-safety: kills=" << plan.kills << " (";
  for (int m = 0; m < kill_modes; ++m) {
    line << (m ? " " : "") << kill_mode_names[m] << "=" << landed[m] << "/" << aimed[m];
  }
  line << ") accepted=" << accepted << " delivered=" << accepted - lost << " lost=" << lost
       << " corrupted=" << corrupted << " duplicates=" << duplicates << " (messages "
       << messages_repeated << ") unacknowledged=" << unacknowledged << " (arrived "
       << unacknowledged_arrived << ") refused=" << refused
       << " token_refreshes=" << google.oauth().refreshes_served()
       << " upstream_logins=" << google.gmail().logins() << " seed=" << seed
       << " seconds=" << std::fixed << std::setprecision(1) << seconds;
  std::cout << line.str() << std::endl;
  testing::Test::RecordProperty("figures", line.str());

  EXPECT_GE(accepted, plan.messages);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(corrupted, 0u);
  if (testing::Test::HasFailure())
    std::cerr << "---- oauth-relayd log (tail)\n"
              << relay.log().substr(relay.log().size() > 20000 ? relay.log().size() - 20000 : 0);
}

TEST(crash, sigkill_under_load_loses_nothing) {
  run_crash_test(crash_plan{});
}

// OAUTH_RELAY_LONG_TESTS=1: 3,000 messages and 24 kills.
TEST(crash, long_sigkill_under_load_loses_nothing) {
  if (!long_tests_enabled()) GTEST_SKIP() << "set OAUTH_RELAY_LONG_TESTS=1";
  crash_plan plan;
  plan.messages = 3000;
  plan.kills = 24;
  plan.drain_kills = 6;
  plan.sessions = 8;
  plan.large_every = 50;
  plan.timeout = std::chrono::seconds(600);
  run_crash_test(plan);
}

}  // namespace
}  // namespace oauth_relay::test_support
