// Fills a state directory with N queued messages for bench/backlog, through
// the daemon's own spool code (drafts, group commit, postpone), so the
// format on disk is exactly the daemon's and cannot drift from it.
//
// Usage: backlog-fill --state-dir DIR --count N [--size BYTES] [--account A]
// The messages are parked as the daemon parks mail of an account that cannot
// send (delivery_queue::postpone), so a daemon started on DIR finds none due.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "common/clock.hpp"
#include "relay/spool/spool.hpp"

namespace asio = boost::asio;
using oauth_relay::relay::envelope;
using oauth_relay::relay::recipient;
using oauth_relay::relay::spool;

namespace {

// Commits in flight at once: enough for the writer to batch hundreds per
// transaction and sync, as under a busy SMTP load.
constexpr std::size_t in_flight = 512;

struct fill_state {
  spool& s;
  envelope env;
  std::string content;
  std::size_t total = 0;
  std::size_t started = 0;
  std::size_t done = 0;
  std::size_t failed = 0;
};

asio::awaitable<void> committer(fill_state& st) {
  while (st.started < st.total) {
    ++st.started;
    auto draft = st.s.store().begin();
    draft->append(st.content);
    auto stored = co_await st.s.store().commit(std::move(draft), st.env);
    if (!stored) {
      if (st.failed++ == 0) std::cerr << "backlog-fill: " << stored.error().detail << "\n";
    }
    ++st.done;
    if (st.done % 100000 == 0) std::cerr << "backlog-fill: " << st.done << " stored\n";
  }
}

// A plain RFC 5322 message of about `size` bytes, CRLF lines.
std::string make_content(std::size_t size) {
  std::string out =
      "Received: from backlog-fill by localhost\r\nFrom: app@example.com\r\n"
      "To: rcpt@example.org\r\nSubject: backlog\r\nDate: Tue, 1 Dec 2026 00:00:00 +0000\r\n"
      "Message-ID: <backlog@example.com>\r\n\r\n";
  const std::string line(76, 'x');
  while (out.size() + line.size() + 2 <= size) out += line + "\r\n";
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"backlog-fill: queue N messages in a state directory with the daemon's spool code"};
  std::string state_dir;
  std::size_t count = 0;
  std::size_t size = 1024;
  std::string account = "backlog@example.com";
  app.add_option("--state-dir", state_dir, "the daemon's state_dir")->required();
  app.add_option("--count", count, "messages to queue")->required();
  app.add_option("--size", size, "bytes per message")->capture_default_str();
  app.add_option("--account", account, "the account they wait for")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  asio::io_context io;
  asio::thread_pool blocking(1);
  const auto started = std::chrono::steady_clock::now();
  {
    spool s(state_dir, io.get_executor(), blocking.get_executor());
    fill_state st{s, {}, make_content(size), count};
    st.env.sender = "app@example.com";
    st.env.account = account;
    st.env.recipients = {recipient{"rcpt@example.org", {}}};
    for (std::size_t i = 0; i < in_flight && i < count; ++i)
      asio::co_spawn(io, committer(st), asio::detached);
    io.run();
    io.restart();
    // Parked as the daemon parks an unauthorized account's mail: due again
    // in a day (or at the delay warning, four hours after arrival, or at the
    // end of queue.lifetime, five days), so a daemon started on the
    // directory has nothing due for hours.
    using namespace std::chrono;
    const std::int64_t day = duration_cast<milliseconds>(hours(24)).count();
    oauth_relay::relay::delivery_queue::parking_limits limits{
        duration_cast<milliseconds>(hours(24 * 5)).count(),
        duration_cast<milliseconds>(hours(4)).count()};
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          auto parked = co_await s.queue().postpone(account, oauth_relay::now_ms() + day, limits,
                                                    "account is not authorized (backlog-fill)");
          if (!parked) std::cerr << "backlog-fill: " << parked.error().detail << "\n";
        },
        asio::detached);
    io.run();
    if (st.failed > 0) {
      std::cerr << "backlog-fill: " << st.failed << " of " << count << " failed\n";
      return 1;
    }
  }
  blocking.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("queued %zu messages of %zu bytes in %.1f s\n", count, size, seconds);
  return 0;
}
