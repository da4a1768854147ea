// Process lifecycle for oauth-relayd. State lives on one event loop; only
// blocking calls leave it: SQLite writes for the spool's writer thread, the
// blocking pool for token endpoint requests, token store reads and writes,
// WAL checkpoints and group lookups, and the SMTP server's password checker
// for crypt_r. Their results are posted back to the loop, so
// a WATCHDOG=1 sent from a timer on that loop proves the loop is not stuck.
#include "daemon/service.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <csignal>
#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include "auth/http_client.hpp"
#include "auth/token_key.hpp"
#include "auth/token_manager.hpp"
#include "auth/token_store.hpp"
#include "config/log.hpp"
#include "daemon/control_routes.hpp"
#include "daemon/health_routes.hpp"
#include "daemon/http_socket.hpp"
#include "relay/delivery/scheduler.hpp"
#include "relay/delivery/upstream_client.hpp"
#include "relay/smtp/alias_loader.hpp"
#include "relay/smtp/logins.hpp"
#include "relay/smtp/server.hpp"
#include "relay/smtp/server_tls.hpp"
#include "relay/spool/local_bounces.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::daemon {
namespace {

namespace asio = boost::asio;

// Sessions still in DATA get this long after SIGTERM; systemd's default stop
// timeout is 90 s, so this stays well inside it.
constexpr auto shutdown_grace = std::chrono::seconds(10);
constexpr auto status_interval = std::chrono::seconds(5);
// Blocking calls in progress at once: token endpoint requests (up to the
// total timeout each) must not hold up the store's reads and writes.
constexpr std::size_t blocking_threads = 4;

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : " ") + item;
  return out;
}

std::string join_lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : "; ") + item;
  return out;
}

// The listener's view of `s` with the files it names read: the TLS context,
// the login table and the local addresses (aliases_file). At start (`running` null) a problem is
// thrown and the daemon does not start; on reload it is logged and the running one is kept.
std::shared_ptr<const relay::listener_config> make_listener_config(
    const config::settings& s, const relay::listener_config* running) {
  std::shared_ptr<asio::ssl::context> tls;
  if (s.tls) {
    try {
      tls = relay::make_server_tls(*s.tls);
    } catch (const relay::tls_config_error& e) {
      if (!running) throw;
      log::error("tls_reload_failed")
          .kv("error", e.what())
          .kv("action", "keeping the running certificate");
      tls = running->tls;
    }
  }
  std::shared_ptr<const relay::login_table> logins;
  if (s.clients_logins_file) {
    auto loaded = relay::login_table::load(*s.clients_logins_file);
    if (!loaded.errors.empty()) {
      if (!running) throw std::runtime_error(join_lines(loaded.errors));
      for (const auto& e : loaded.errors) log::error("logins_reload_failed").kv("problem", e);
      log::error("logins_reload_failed").kv("action", "keeping the running logins");
      logins = running->logins;
    } else {
      logins = std::move(loaded.table);
    }
  }
  std::shared_ptr<const relay::local_addresses> local;
  auto loaded_local = relay::load_local_addresses(s);
  for (const auto& w : loaded_local.warnings)
    log::warning("local_addresses_warning").kv("problem", w);
  if (!loaded_local.errors.empty()) {
    if (!running) throw std::runtime_error(join_lines(loaded_local.errors));
    for (const auto& e : loaded_local.errors) log::error("aliases_reload_failed").kv("problem", e);
    log::error("aliases_reload_failed").kv("action", "keeping the running aliases");
    local = running->local;
  } else {
    local = std::move(loaded_local.table);
  }
  return std::make_shared<const relay::listener_config>(s, std::move(tls), std::move(logins),
                                                        std::move(local));
}

class service {
 public:
  service(std::filesystem::path config_path, config::settings settings, auth::token_cipher key)
      : config_path_(std::move(config_path)),
        settings_(std::move(settings)),
        spool_(settings_.state_dir, io_.get_executor(), blocking_.get_executor()),
        token_store_(settings_.state_dir, std::move(key)),
        tokens_(io_.get_executor(), blocking_.get_executor(), settings_, token_store_,
                std::make_shared<auth::curl_http_client>()),
        upstream_(std::make_unique<relay::tls_upstream_connector>(io_.get_executor(), settings_)),
        local_bounces_(spool_.queue()),
        scheduler_(io_.get_executor(), local_bounces_, tokens_, *upstream_, settings_),
        server_(io_, spool_.store(), make_listener_config(settings_, nullptr),
                blocking_.get_executor()),
        health_routes_({spool_, tokens_, scheduler_, server_}, OAUTH_RELAY_VERSION),
        control_routes_(
            {spool_, tokens_, scheduler_, token_store_, blocking_.get_executor(), settings_}),
        // Monitoring reads; administrators (root, the service user) change.
        health_(io_, {"health_socket", settings_.health_socket, 0660, /*owner_only=*/false},
                [this](const http_request& r) { return health_routes_.respond(r); }),
        control_(io_, {"control_socket", settings_.control_socket, 0600, /*owner_only=*/true},
                 [this](const http_request& r) { return control_routes_.respond(r); }),
        signals_(io_, SIGTERM, SIGINT, SIGHUP),
        watchdog_timer_(io_),
        status_timer_(io_) {}

  // Work on the blocking pool uses the store and posts to the loop: it ends
  // (a token request abandoned by stop()) before either goes.
  ~service() {
    tokens_.stop();
    blocking_.join();
  }
  service(const service&) = delete;
  service& operator=(const service&) = delete;

  int run() {
    const int passed = sd_listen_fds(1);
    if (passed > 0) {
      for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + passed; ++fd) server_.adopt(fd);
    } else {
      server_.listen(settings_.listen);
    }
    health_.start();
    control_.start();
    server_.start();
    local_bounces_.use(server_.config()->local);
    spool_.on_stored([this] { scheduler_.wake(); });
    tokens_.on_state_change([this](const std::string& account, auth::token_state state) {
      scheduler_.account_state_changed(account, state);
    });
    tokens_.start();
    scheduler_.start();
    wait_for_signal();
    std::uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(1, &watchdog_usec) > 0 && watchdog_usec > 0) {
      watchdog_interval_ = std::chrono::microseconds(watchdog_usec / 2);
      watchdog_tick();
    }
    status_tick();
    auto exposed = settings_;
    exposed.listen = server_.bound_addresses();
    for (const auto& warning : config::exposure_warnings(exposed)) {
      log::warning("listener_exposed").kv("problem", warning);
    }
    log::notice("started")
        .kv("version", OAUTH_RELAY_VERSION)
        .kv("listen", join(server_.local_endpoints()))
        .kv("socket_activated", passed > 0 ? "yes" : "no")
        .kv("health_socket", health_.path().string())
        .kv("control_socket", control_.path().string())
        .kv("state_dir", settings_.state_dir.string());
    sd_notifyf(0, "READY=1\nSTATUS=%s", status_line().c_str());
    if (spool_.check_deferred()) check_spool();
    io_.run();
    log::notice("stopped").kv("accepted", spool_.messages_stored());
    return exit_status_;
  }

 private:
  std::string status_line() const {
    return "Accepting SMTP on " + join(server_.local_endpoints()) + "; " +
           std::to_string(server_.active_sessions()) + " sessions, " +
           std::to_string(spool_.messages_stored()) + " messages accepted";
  }

  void wait_for_signal() {
    signals_.async_wait([this](boost::system::error_code ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        reload();
        wait_for_signal();
      } else {
        stop(signal);
      }
    });
  }

  void reload() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    const auto usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                      static_cast<unsigned long long>(now.tv_nsec / 1000);
    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading %s", usec,
               config_path_.c_str());
    auto loaded = config::load(config_path_);
    if (!loaded.errors.empty()) {
      for (const auto& e : loaded.errors)
        log::error("config_reload_rejected").kv("problem", e.to_string());
      log::error("config_reload_failed")
          .kv("file", config_path_.string())
          .kv("problems", loaded.errors.size())
          .kv("action", "keeping the running configuration");
    } else {
      auto& next = *loaded.value;
      if (next.listen != settings_.listen) {
        log::warning("config_needs_restart").kv("key", "listen");
      }
      if (next.state_dir != settings_.state_dir) {
        log::warning("config_needs_restart").kv("key", "state_dir");
      }
      if (next.secrets.key_file != settings_.secrets.key_file) {
        log::warning("config_needs_restart").kv("key", "secrets.key_file");
      }
      // Rebinding would need the new directory's rights, which a sandboxed
      // service may not have: the sockets stay as they are until a restart.
      if (next.health_socket != settings_.health_socket) {
        log::warning("config_needs_restart")
            .kv("key", "health_socket")
            .kv("serving", health_.path().string());
      }
      if (next.control_socket != settings_.control_socket) {
        log::warning("config_needs_restart")
            .kv("key", "control_socket")
            .kv("serving", control_.path().string());
      }
      // Keys that need a restart keep their running values.
      next.listen = settings_.listen;
      next.state_dir = settings_.state_dir;
      next.health_socket = settings_.health_socket;
      next.secrets = settings_.secrets;
      next.control_socket = settings_.control_socket;
      settings_ = next;
      // The certificate, key, logins and aliases files are read again even when their
      // names did not change: replacing them and reloading is how they are renewed.
      server_.reconfigure(make_listener_config(settings_, server_.config().get()));
      local_bounces_.use(server_.config()->local);
      tokens_.reconfigure(settings_);
      try {
        // A new CA file or upstream is a new connector; open connections
        // finish with the TLS context they were made with.
        auto upstream =
            std::make_unique<relay::tls_upstream_connector>(io_.get_executor(), settings_);
        scheduler_.reconfigure(settings_, *upstream);
        upstream_ = std::move(upstream);
      } catch (const std::exception& e) {
        log::error("upstream_tls_config_failed").kv("error", e.what());
      }
      log::notice("config_reloaded").kv("file", config_path_.string());
    }
    sd_notifyf(0, "READY=1\nSTATUS=%s", status_line().c_str());
  }

  void stop(int signal) {
    sd_notify(0, "STOPPING=1\nSTATUS=Stopping: finishing sessions");
    log::notice("stopping")
        .kv("signal", signal == SIGTERM  ? "SIGTERM"
                      : signal == SIGINT ? "SIGINT"
                                         : "none")
        .kv("sessions", server_.active_sessions());
    scheduler_.stop();
    server_.stop(shutdown_grace, [this] {
      health_.stop();
      control_.stop();
      tokens_.stop();
      signals_.cancel();
      watchdog_timer_.cancel();
      status_timer_.cancel();
      io_.stop();
    });
  }

  // A large queue.db is checked once listening (relay::spool::check_later): a
  // damaged one stops the daemon as it would have refused to start, exit 1.
  void check_spool() {
    const auto began = std::chrono::steady_clock::now();
    spool_.check_later([this, began](const std::string& problem) {
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::steady_clock::now() - began)
                          .count();
      if (problem.empty()) {
        log::info("queue_checked").kv("ms", static_cast<std::int64_t>(ms));
        return;
      }
      log::error("spool_unusable").kv("error", problem);
      sd_notifyf(0, "STATUS=Failed: %s", problem.c_str());
      exit_status_ = 1;
      stop(0);
    });
  }

  void watchdog_tick() {
    sd_notify(0, "WATCHDOG=1");
    watchdog_timer_.expires_after(watchdog_interval_);
    watchdog_timer_.async_wait([this](boost::system::error_code ec) {
      if (!ec) watchdog_tick();
    });
  }

  void status_tick() {
    status_timer_.expires_after(status_interval);
    status_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      sd_notifyf(0, "STATUS=%s", status_line().c_str());
      status_tick();
    });
  }

  std::filesystem::path config_path_;
  config::settings settings_;
  asio::io_context io_{1};
  asio::thread_pool blocking_{blocking_threads};
  relay::spool spool_;
  auth::token_store token_store_;
  auth::token_manager tokens_;
  std::unique_ptr<relay::upstream_connector> upstream_;
  // Reports to a local sender go to its aliases (the listener's table).
  relay::local_bounces local_bounces_;
  relay::delivery_scheduler scheduler_;
  relay::smtp_server server_;
  health_routes health_routes_;
  control_routes control_routes_;
  http_socket health_;
  http_socket control_;
  asio::signal_set signals_;
  asio::steady_timer watchdog_timer_;
  asio::steady_timer status_timer_;
  std::chrono::microseconds watchdog_interval_{0};
  int exit_status_ = 0;
};

}  // namespace

int run(const std::filesystem::path& config_path, config::settings settings) {
  std::signal(SIGPIPE, SIG_IGN);
  try {
    // The key first: a missing or wrong one stops the start before anything
    // opens the database for writing.
    auto key = auth::token_cipher_for(settings, auth::key_creation::allowed);
    service s(config_path, std::move(settings), std::move(key));
    return s.run();
  } catch (const auth::token_key_error& e) {
    log::error("token_key_unusable").kv("error", e.what()).kv("hint", e.fix());
    sd_notifyf(0, "STATUS=Failed: %s", e.what());
    return 1;
  } catch (const relay::spool_error& e) {
    log::error("spool_unusable").kv("error", e.what());
    sd_notifyf(0, "STATUS=Failed: %s", e.what());
    return 1;
  } catch (const auth::token_store_error& e) {
    log::error("token_store_unusable").kv("error", e.what());
    sd_notifyf(0, "STATUS=Failed: %s", e.what());
    return 1;
  } catch (const std::exception& e) {
    log::error("startup_failed").kv("error", e.what());
    sd_notifyf(0, "STATUS=Failed: %s", e.what());
    return 1;
  }
}

}  // namespace oauth_relay::daemon
