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
      store.store_refresh_token(address, refresh_token);
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

  ::kill(relayd, SIGTERM);
  const int relayd_status = wait_exit(relayd);
  relayd_pid = -1;

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
  return oauth_relay::bench::run(o);
}
