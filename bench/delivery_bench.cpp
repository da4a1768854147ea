// delivery-bench: end-to-end figures for delivery to Gmail. Starts the in-repo
// fake Gmail (STARTTLS, XOAUTH2) and fake token endpoint, runs the real
// oauth-relayd against them and smtp-load (or Postfix's smtp-source, for the
// comparison with Postfix in bench/compare) against it, and reports accepted
// and delivered messages per second, upstream logins per 1,000 messages and,
// with smtp-load, the latency of the applications' 250 replies.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "auth/token_key.hpp"
#include "auth/token_store.hpp"
#include "fakes/fake_gmail.hpp"
#include "fakes/fake_oauth.hpp"
#include "fakes/test_pki.hpp"

extern char** environ;

namespace oauth_relay::bench {
namespace {

namespace fs = std::filesystem;
using steady = std::chrono::steady_clock;

constexpr const char* account = "bench@example.com";  // with --accounts N: bench-K@example.com
constexpr const char* recipient = "rcpt@example.com";

enum class client_kind { smtp_load, smtp_source };

struct options {
  std::string relayd;
  std::string load;
  client_kind client = client_kind::smtp_load;
  std::string smtp_source = "/usr/sbin/smtp-source";
  bool reuse_connections = false;  // smtp-source -d
  int sessions = 20;
  std::uint64_t messages = 10000;
  std::uint64_t warmup = 200;
  std::size_t size = 10240;
  int reply_delay_ms = 0;
  int max_connections = 4;
  int accounts = 1;
  double rate = 0;  // smtp-load --rate
  bool keep = false;
  bool no_drain = false;  // stop after the load; do not wait for delivery
  // --backlog N: N messages queued (backlog-fill) while the account is not
  // authorized; the run imports its token and measures the drain, with
  // --messages of fresh mail offered meanwhile at --rate.
  std::uint64_t backlog = 0;
  std::string fill;  // path of backlog-fill
  std::string ctl;   // path of oauth-relayctl
};

// The accounts behind the relay: bench@example.com alone, or with N of
// them the senders smtp-load --senders N makes of it.
std::vector<std::string> account_addresses(int n) {
  if (n <= 1) return {account};
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k) out.push_back("bench-" + std::to_string(k) + "@example.com");
  return out;
}

// The daemon under test, stopped by die() so that a failed run leaves no
// oauth-relayd behind; its directory stays, for the log.
pid_t relayd_pid = -1;
fs::path run_dir;

[[noreturn]] void die(const std::string& why) {
  std::cerr << "delivery-bench: " << why << '\n';
  if (!run_dir.empty()) std::cerr << "delivery-bench: kept " << run_dir.string() << '\n';
  if (relayd_pid > 0) {
    ::kill(relayd_pid, SIGKILL);
    ::waitpid(relayd_pid, nullptr, 0);
  }
  std::exit(1);
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) die("cannot start " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// SIGTERM to the daemon under test; its exit status.
int stop_relayd() {
  ::kill(relayd_pid, SIGTERM);
  const int status = wait_exit(relayd_pid);
  relayd_pid = -1;
  return status;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Field NAME of a "k=v k=v" line.
std::string field(const std::string& line, const std::string& name) {
  std::istringstream words(line);
  for (std::string w; words >> w;) {
    if (w.rfind(name + "=", 0) == 0) return w.substr(name.size() + 1);
  }
  return {};
}

// User + system CPU seconds of a process so far.
double cpu_seconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(f);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Seconds the threads of a process have spent runnable but waiting for a CPU
// (/proc/PID/task/TID/schedstat, second field): how much other work on the
// machine held the daemon back. 0 without schedstats.
double run_queue_wait_seconds(pid_t pid) {
  double ns = 0;
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "schedstat");
    double cpu = 0;
    double wait = 0;
    if (in >> cpu >> wait) ns += wait;
  }
  return ns / 1e9;
}

long rss_kb(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
  }
  return 0;
}

struct load_result {
  std::string line;
  double seconds = 0;
};

load_result run_load(const options& o, std::uint16_t port, std::uint64_t messages,
                     const fs::path& dir) {
  const auto out = dir / "load.out";
  const auto err = dir / "load.err";
  const auto pid =
      spawn({o.load, "--port", std::to_string(port), "--sessions", std::to_string(o.sessions),
             "--messages", std::to_string(messages), "--size", std::to_string(o.size), "--from",
             account, "--senders", std::to_string(o.accounts), "--rate", std::to_string(o.rate)},
            out, err);
  const int status = wait_exit(pid);
  load_result r;
  r.line = read_file(out);
  while (!r.line.empty() && r.line.back() == '\n') r.line.pop_back();
  if (status != 0 || field(r.line, "failed") != "0") {
    die("smtp-load failed (exit " + std::to_string(status) + "): " + r.line + " " + read_file(err));
  }
  r.seconds = std::stod(field(r.line, "seconds"));
  return r;
}

// smtp-source prints no summary: with -c, a running count of completed DATA
// commands separated by CR (or LF); the last number is what it sent. It stops
// at the first unexpected reply, so the exit status and the count are the checks.
std::uint64_t last_count(const std::string& text) {
  std::uint64_t count = 0;
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = text.find_first_of("\r\n", at);
    const auto token = text.substr(at, end == std::string::npos ? std::string::npos : end - at);
    if (!token.empty() && token.find_first_not_of("0123456789") == std::string::npos) {
      count = std::stoull(token);
    }
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return count;
}

// The same command line as bench/compare gives smtp-source against Postfix.
load_result run_source(const options& o, std::uint16_t port, std::uint64_t messages,
                       const fs::path& dir) {
  const auto out = dir / "source.out";
  const auto err = dir / "source.err";
  std::vector<std::string> argv{o.smtp_source};
  if (o.reuse_connections) argv.emplace_back("-d");
  for (const auto& a :
       {std::string("-c"), std::string("-s"), std::to_string(o.sessions), std::string("-m"),
        std::to_string(messages), std::string("-l"), std::to_string(o.size), std::string("-f"),
        std::string(account), std::string("-t"), std::string(recipient),
        "127.0.0.1:" + std::to_string(port)}) {
    argv.push_back(a);
  }
  const auto start = steady::now();
  const auto pid = spawn(argv, out, err);
  const int status = wait_exit(pid);
  const double seconds = std::chrono::duration<double>(steady::now() - start).count();
  const auto output = read_file(out) + "\n" + read_file(err);
  const auto count = last_count(output);
  if (status != 0 || count != messages) {
    die("smtp-source failed (exit " + std::to_string(status) + ", " + std::to_string(count) +
        " of " + std::to_string(messages) + " messages): " + read_file(err));
  }
  char line[160];
  std::snprintf(line, sizeof line, "accepted=%llu seconds=%.3f rate=%.1f p50_ms=- p99_ms=-",
                static_cast<unsigned long long>(count), seconds,
                static_cast<double>(count) / seconds);
  return {line, seconds};
}

// How the accounts fared against each other: messages each delivered (all
// runs), the most connections one account had logged in at a time, and when
// each account's last measured message arrived, from the measured load's
// start (first, median, last of the accounts): an account starved by the
// others finishes long after them.
std::string account_spread(const fakes::fake_gmail& gmail, steady::time_point start) {
  std::map<std::string, std::size_t> delivered;
  std::map<std::string, double> finished_s;
  for (const auto& m : gmail.messages()) {
    ++delivered[m.user];
    if (m.accepted_at < start) continue;
    auto& f = finished_s[m.user];
    f = std::max(f, std::chrono::duration<double>(m.accepted_at - start).count());
  }
  std::size_t fewest = SIZE_MAX, most = 0, peak = 0;
  for (const auto& [user, n] : delivered) {
    fewest = std::min(fewest, n);
    most = std::max(most, n);
  }
  for (const auto& [user, n] : gmail.peak_logins_per_user()) peak = std::max(peak, n);
  std::vector<double> finish;
  for (const auto& [user, f] : finished_s) finish.push_back(f);
  std::sort(finish.begin(), finish.end());
  if (finish.empty()) finish.push_back(0);
  char line[256];
  std::snprintf(line, sizeof line,
                "accounts=%zu delivered_per_account_min=%zu delivered_per_account_max=%zu "
                "max_logins_per_account=%zu finish_first_s=%.3f finish_median_s=%.3f "
                "finish_last_s=%.3f",
                delivered.size(), fewest, most, peak, finish.front(), finish[finish.size() / 2],
                finish.back());
  return line;
}

load_result run_client(const options& o, std::uint16_t port, std::uint64_t messages,
                       const fs::path& dir) {
  return o.client == client_kind::smtp_source ? run_source(o, port, messages, dir)
                                              : run_load(o, port, messages, dir);
}

// Seconds from `start` to each time point, sorted.
std::vector<double> seconds_after(steady::time_point start,
                                  const std::vector<steady::time_point>& at) {
  std::vector<double> out;
  for (const auto& t : at) out.push_back(std::chrono::duration<double>(t - start).count());
  std::sort(out.begin(), out.end());
  return out;
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto at = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(at, sorted.size() - 1)];
}

// The backlog run: --backlog messages wait for an account nobody has
// authorized; `oauth-relayctl import` gives it its token while smtp-load
// offers --messages of fresh mail at --rate. Reports how fast the backlog
// reached the stand-in, the daemon's peak memory, the fresh mail's 250
// latency, and when fresh mail was delivered against the backlog's end.
int drain(const options& o, const fs::path& dir, std::uint16_t port, fakes::fake_gmail& gmail) {
  const auto config = dir / "config.yaml";
  const auto token_file = dir / "refresh-token";
  std::ofstream(token_file) << "bench-refresh-token-" << account << "\n";
  fs::permissions(token_file, fs::perms::owner_read | fs::perms::owner_write);
  const std::uint64_t total = o.backlog + o.messages;

  const auto start = steady::now();
  const double relayd_cpu_before = cpu_seconds(relayd_pid);
  const double relayd_wait_before = run_queue_wait_seconds(relayd_pid);
  const int imported = wait_exit(spawn({o.ctl, "-c", config.string(), "import", account,
                                        "--refresh-token-file", token_file.string()},
                                       dir / "import.out", dir / "import.err"));
  if (imported != 0) die("oauth-relayctl import failed: " + read_file(dir / "import.err"));
  const auto import_done = steady::now();
  const auto load_out = dir / "load.out";
  const pid_t load =
      o.messages == 0
          ? -1
          : spawn({o.load, "--port", std::to_string(port), "--sessions", std::to_string(o.sessions),
                   "--messages", std::to_string(o.messages), "--size", std::to_string(o.size),
                   "--from", account, "--rate", std::to_string(o.rate)},
                  load_out, dir / "load.err");
  int load_status = 0;
  bool load_running = load > 0;
  std::size_t delivered_at_load_end = 0;
  steady::time_point load_end = start;
  long peak_rss_kb = 0;
  while (gmail.message_count() < total || load_running) {
    if (steady::now() - start > std::chrono::minutes(15)) {
      die("not every message was delivered within 15 minutes");
    }
    peak_rss_kb = std::max(peak_rss_kb, rss_kb(relayd_pid, "VmRSS"));
    if (load_running) {
      int status = 0;
      const pid_t done = ::waitpid(load, &status, WNOHANG);
      if (done == load) {
        load_running = false;
        load_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        load_end = steady::now();
        delivered_at_load_end = gmail.message_count();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const auto all_done = steady::now();
  const double relayd_cpu = cpu_seconds(relayd_pid) - relayd_cpu_before;
  const double relayd_wait = run_queue_wait_seconds(relayd_pid) - relayd_wait_before;
  // Late duplicates would show here.
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const long hwm_kb = rss_kb(relayd_pid, "VmHWM");
  std::string load_line = read_file(load_out);
  while (!load_line.empty() && load_line.back() == '\n') load_line.pop_back();
  if (load > 0 && (load_status != 0 || field(load_line, "failed") != "0")) {
    die("smtp-load failed (exit " + std::to_string(load_status) + "): " + load_line);
  }

  std::vector<steady::time_point> backlog_at, fresh_at;
  for (const auto& m : gmail.messages()) {
    (m.content.find("Subject: backlog\r\n") != std::string::npos ? backlog_at : fresh_at)
        .push_back(m.accepted_at);
  }
  const auto backlog_s = seconds_after(start, backlog_at);
  const auto fresh_s = seconds_after(start, fresh_at);
  const double drain_s = backlog_s.empty() ? 0 : backlog_s.back();
  const double load_end_s = std::chrono::duration<double>(load_end - start).count();
  std::size_t fresh_before_backlog_end = 0;
  for (double t : fresh_s) fresh_before_backlog_end += t < drain_s ? 1 : 0;

  const int relayd_status = stop_relayd();

  std::printf(
      "drain backlog=%llu fresh=%llu fresh_rate=%.0f size=%zu import_s=%.3f drain_s=%.3f "
      "drain_rate=%.1f all_s=%.3f all_rate=%.1f peak_rss_mb=%.1f hwm_mb=%.1f "
      "fresh_p50_ms=%s fresh_p99_ms=%s load_end_s=%.3f delivered_at_load_end=%zu "
      "fresh_delivered_first_s=%.3f fresh_delivered_median_s=%.3f fresh_delivered_last_s=%.3f "
      "fresh_before_backlog_end=%zu relayd_cpu_s=%.2f relayd_wait_s=%.2f delivered=%zu "
      "relayd_exit=%d\n",
      static_cast<unsigned long long>(backlog_s.size()),
      static_cast<unsigned long long>(fresh_s.size()), o.rate, o.size,
      std::chrono::duration<double>(import_done - start).count(), drain_s,
      drain_s > 0 ? static_cast<double>(backlog_s.size()) / drain_s : 0.0,
      std::chrono::duration<double>(all_done - start).count(),
      static_cast<double>(total) / std::chrono::duration<double>(all_done - start).count(),
      static_cast<double>(peak_rss_kb) / 1024.0, static_cast<double>(hwm_kb) / 1024.0,
      field(load_line, "p50_ms").c_str(), field(load_line, "p99_ms").c_str(), load_end_s,
      delivered_at_load_end, quantile(fresh_s, 0), quantile(fresh_s, 0.5), quantile(fresh_s, 1),
      fresh_before_backlog_end, relayd_cpu, relayd_wait, backlog_s.size() + fresh_s.size(),
      relayd_status);
  std::fflush(stdout);
  if (o.keep) {
    std::cerr << "delivery-bench: kept " << dir << '\n';
  } else {
    fs::remove_all(dir);
  }
  const bool exact = backlog_s.size() == o.backlog && fresh_s.size() == o.messages;
  if (!exact) {
    std::cerr << "delivery-bench: delivered " << backlog_s.size() << " of the backlog and "
              << fresh_s.size() << " fresh messages, expected " << o.backlog << " and "
              << o.messages << "\n";
  }
  return relayd_status == 0 && exact ? 0 : 1;
}

int run(const options& o) {
  fs::path dir = fs::temp_directory_path() /
                 ("oauth-relay-delivery-bench." + std::to_string(std::random_device{}()));
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all);
  run_dir = dir;

  fakes::test_pki pki;
  fakes::fake_oauth google(pki);
  fakes::fake_gmail gmail(fakes::fake_gmail::mode::starttls,
                          pki.issue({"localhost"}, {"127.0.0.1"}));
  gmail.set_token_validator([&google](const std::string& user, const std::string& token) {
    return google.token_valid(user, token);
  });
  gmail.set_reply_delay(std::chrono::milliseconds(o.reply_delay_ms));
  const auto addresses = account_addresses(o.accounts);
  const auto ca = pki.write_ca(dir / "ca.pem");

  const auto state = dir / "state";
  fs::create_directories(state);
  fs::permissions(state, fs::perms::owner_all);
  const auto key_file = dir / "token.key";
  {
    auth::token_store store(state, auth::load_token_key_file(key_file, auth::when_missing::create));
    for (const auto& address : addresses) {
      const std::string refresh_token = "bench-refresh-token-" + address;
      google.add_account(address, refresh_token);
      // A backlog builds up for an account nobody has authorized yet.
      if (o.backlog == 0) store.store_refresh_token(address, refresh_token);
    }
  }
  std::string accounts_yaml = "accounts:\n";
  for (const auto& address : addresses) {
    accounts_yaml += "  - address: " + address + "\n";
    if (&address == &addresses.front()) accounts_yaml += "    default: true\n";
  }

  std::ofstream(dir / "config.yaml") << "listen: [\"127.0.0.1:0\"]\n"
                                     << "state_dir: " << state.string() << "\n"
                                     << "health_socket: " << (dir / "health.sock").string() << "\n"
                                     << "secrets:\n  key_file: " << key_file.string() << "\n"
                                     << "hostname: relay.bench\n"
                                     << "upstream:\n"
                                     << "  host: 127.0.0.1\n"
                                     << "  port: " << gmail.port() << "\n"
                                     << "  tls: starttls\n"
                                     << "  ca_file: " << ca.string() << "\n"
                                     << "  max_connections: " << o.max_connections << "\n"
                                     << "oauth:\n"
                                     << "  client_id: \"" << google.client_id() << "\"\n"
                                     << "  client_secret: \"" << google.client_secret() << "\"\n"
                                     << "  token_url: " << google.token_url() << "\n"
                                     << "  ca_file: " << ca.string() << "\n"
                                     << accounts_yaml;

  if (o.backlog > 0) {
    // Parked as the daemon parks an unauthorized account's mail.
    const auto status = wait_exit(
        spawn({o.fill, "--state-dir", state.string(), "--count", std::to_string(o.backlog),
               "--size", std::to_string(o.size), "--account", account},
              dir / "fill.out", dir / "fill.err"));
    if (status != 0) die("backlog-fill failed: " + read_file(dir / "fill.err"));
    std::cerr << "delivery-bench: " << read_file(dir / "fill.out");
  }

  const auto log = dir / "relayd.log";
  const pid_t relayd =
      spawn({o.relayd, "-c", (dir / "config.yaml").string()}, dir / "relayd.out", log);
  relayd_pid = relayd;
  std::uint16_t port = 0;
  for (int i = 0; i < 100 && port == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto text = read_file(log);
    const auto at = text.find("event=started");
    if (at == std::string::npos) continue;
    const auto listen = text.find("listen=127.0.0.1:", at);
    if (listen != std::string::npos) port = std::stoi(text.substr(listen + 17));
  }
  if (port == 0) die("oauth-relayd did not start: " + read_file(log));

  if (o.backlog > 0) return drain(o, dir, port, gmail);

  // Warm-up: the first token refresh, TLS session and connections.
  run_client(o, port, o.warmup, dir);
  if (!gmail.wait_for_messages(o.warmup, std::chrono::seconds(60))) {
    die("warm-up messages were not delivered; see " + log.string());
  }
  const auto logins_before = gmail.logins();
  const auto refreshes_before = google.refreshes_served();

  const double relayd_cpu_before = cpu_seconds(relayd);
  const double relayd_wait_before = run_queue_wait_seconds(relayd);
  const double fakes_cpu_before = cpu_seconds(::getpid());
  const auto start = steady::now();
  const auto load = run_client(o, port, o.messages, dir);
  const auto accepted_at = steady::now();
  const long peak_kb = rss_kb(relayd, "VmHWM");
  if (!o.no_drain && !gmail.wait_for_messages(o.warmup + o.messages, std::chrono::minutes(10))) {
    die("not every message was delivered within 10 minutes; see " + log.string());
  }
  const auto delivered_at = steady::now();
  const double relayd_cpu = cpu_seconds(relayd) - relayd_cpu_before;
  const double relayd_wait = run_queue_wait_seconds(relayd) - relayd_wait_before;
  const double fakes_cpu = cpu_seconds(::getpid()) - fakes_cpu_before;
  const double e2e_seconds = std::chrono::duration<double>(delivered_at - start).count();
  const auto logins = gmail.logins() - logins_before;
  const auto delivered = gmail.messages().size();

  const std::string per_account = o.accounts > 1 ? account_spread(gmail, start) : std::string();

  const int relayd_status = stop_relayd();

  std::printf(
      "delivery client=%s sessions=%d messages=%llu size=%zu reply_delay_ms=%d accepted_rate=%s "
      "p50_ms=%s p99_ms=%s e2e_seconds=%.3f e2e_rate=%.1f delivered=%zu logins=%zu "
      "logins_per_1000=%.2f refreshes=%zu peak_rss_mb=%.1f drain_after_accept_s=%.3f "
      "relayd_cpu_s=%.2f relayd_wait_s=%.2f fakes_cpu_s=%.2f relayd_exit=%d\n",
      o.client == client_kind::smtp_source ? (o.reuse_connections ? "smtp-source-d" : "smtp-source")
                                           : "smtp-load",
      o.sessions, static_cast<unsigned long long>(o.messages), o.size, o.reply_delay_ms,
      field(load.line, "rate").c_str(), field(load.line, "p50_ms").c_str(),
      field(load.line, "p99_ms").c_str(), e2e_seconds,
      static_cast<double>(o.messages) / e2e_seconds, delivered, logins,
      1000.0 * static_cast<double>(logins) / static_cast<double>(o.messages),
      google.refreshes_served() - refreshes_before, static_cast<double>(peak_kb) / 1024.0,
      std::chrono::duration<double>(delivered_at - accepted_at).count(), relayd_cpu, relayd_wait,
      fakes_cpu, relayd_status);

  if (!per_account.empty()) std::printf("%s\n", per_account.c_str());
  std::fflush(stdout);
  if (o.keep) {
    std::cerr << "delivery-bench: kept " << dir << '\n';
  } else {
    fs::remove_all(dir);
  }
  const bool exact = o.no_drain || delivered == o.warmup + o.messages;
  if (!exact)
    std::cerr << "delivery-bench: delivered " << delivered << " messages, expected "
              << o.warmup + o.messages << " (duplicates)\n";
  return relayd_status == 0 && exact ? 0 : 1;
}

}  // namespace
}  // namespace oauth_relay::bench

int main(int argc, char** argv) {
  oauth_relay::bench::options o;
  CLI::App app{"End-to-end delivery benchmark against the in-repo fake Gmail"};
  app.add_option("--relayd", o.relayd, "path of oauth-relayd")->required();
  app.add_option("--load", o.load, "path of smtp-load (with --client smtp-load)");
  std::string client = "smtp-load";
  app.add_option("--client", client, "the SMTP client that offers the load")
      ->check(CLI::IsMember({"smtp-load", "smtp-source"}))
      ->capture_default_str();
  app.add_option("--smtp-source", o.smtp_source, "path of Postfix's smtp-source")
      ->capture_default_str();
  app.add_flag("--reuse-connections", o.reuse_connections,
               "smtp-source -d: each session sends all its messages over one connection");
  app.add_option("--sessions", o.sessions, "parallel SMTP sessions")->capture_default_str();
  app.add_option("--messages", o.messages, "messages measured")->capture_default_str();
  app.add_option("--warmup", o.warmup, "messages sent first, not measured")->capture_default_str();
  app.add_option("--size", o.size, "octets per message")->capture_default_str();
  app.add_option("--reply-delay-ms", o.reply_delay_ms, "the fake Gmail waits before each reply")
      ->capture_default_str();
  app.add_option("--max-connections", o.max_connections, "upstream.max_connections")
      ->capture_default_str();
  app.add_option("--accounts", o.accounts,
                 "accounts behind the relay (bench-K@example.com), smtp-load sending as each "
                 "in turn")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--rate", o.rate, "offered messages per second (0: as fast as accepted)")
      ->capture_default_str();
  app.add_flag("--no-drain", o.no_drain,
               "measure acceptance only: stop the daemon after the load (mail stays queued)");
  app.add_option("--backlog", o.backlog,
                 "queue N messages (with --fill) while the account is unauthorized, then import "
                 "its token (with --ctl) and measure the drain; --messages fresh ones are offered "
                 "meanwhile at --rate")
      ->capture_default_str();
  app.add_option("--fill", o.fill, "path of backlog-fill (with --backlog)");
  app.add_option("--ctl", o.ctl, "path of oauth-relayctl (with --backlog)");
  app.add_flag("--keep", o.keep, "keep the temporary directory (config, state, log)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int status = app.exit(e);
    return status == 0 ? 0 : 2;
  }
  if (client == "smtp-source") o.client = oauth_relay::bench::client_kind::smtp_source;
  if (o.client == oauth_relay::bench::client_kind::smtp_load && o.load.empty()) {
    std::cerr << "delivery-bench: --load is required with --client smtp-load\n";
    return 2;
  }
  if (o.client == oauth_relay::bench::client_kind::smtp_source && o.accounts > 1) {
    std::cerr
        << "delivery-bench: --accounts needs --client smtp-load (smtp-source has one sender)\n";
    return 2;
  }
  if (o.client == oauth_relay::bench::client_kind::smtp_source && o.rate > 0) {
    std::cerr << "delivery-bench: --rate needs --client smtp-load (smtp-source cannot pace)\n";
    return 2;
  }
  if (o.backlog > 0 && (o.fill.empty() || o.ctl.empty() || o.load.empty() || o.accounts > 1 ||
                        o.client != oauth_relay::bench::client_kind::smtp_load)) {
    std::cerr << "delivery-bench: --backlog needs --fill, --ctl and --load, one account\n";
    return 2;
  }
  return oauth_relay::bench::run(o);
}
