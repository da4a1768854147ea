// The health socket's two answers: the figures come from the spool's writer
// thread (the queue summary) or from memory (tokens, scheduler counters), so
// a monitoring poll never makes the loop wait.
#include "daemon/health_routes.hpp"

#include "auth/token_manager.hpp"
#include "common/clock.hpp"
#include "common/text.hpp"
#include "config/log.hpp"
#include "relay/delivery/scheduler.hpp"
#include "relay/smtp/server.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::daemon {

namespace asio = boost::asio;

const std::array<route<health_routes>, 2> health_routes::table{{
    {"GET", "/health", &health_routes::health},
    {"GET", "/metrics", &health_routes::metrics},
}};

health_routes::health_routes(sources s, std::string version)
    : sources_(s),
      version_(std::move(version)),
      started_(std::chrono::steady_clock::now()),
      durations_(delivery_duration_buckets()) {
  sources_.scheduler.on_delivery_duration([this](double seconds) { durations_.observe(seconds); });
}

health_routes::~health_routes() {
  sources_.scheduler.on_delivery_duration({});
}

asio::awaitable<http_reply> health_routes::respond(const http_request& request) {
  http_reply refusal;
  const auto* r = find_route<health_routes>(table, request.method, request.path, refusal);
  if (r == nullptr) co_return refusal;
  co_return co_await (this->*(r->answer))(request.body);
}

health_input health_routes::gather(const relay::spool_result<relay::queue_summary>& queue) const {
  health_input in;
  in.now = now_ms() / 1000;
  in.outage_alert_after = sources_.scheduler.outage_alert_after();
  in.uptime_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  if (queue) {
    in.queue = *queue;
  } else {
    in.queue_error = one_line(queue.error().detail);
  }
  const auto& counters = sources_.scheduler.counters();
  for (auto& status : sources_.tokens.status()) {
    account_health a;
    a.status = std::move(status);
    const auto& address = a.status.address;
    if (auto it = counters.delivered_by_account.find(address);
        it != counters.delivered_by_account.end())
      a.delivered = it->second;
    if (auto it = counters.failures_in_a_row.find(address); it != counters.failures_in_a_row.end())
      a.failures_in_a_row = it->second;
    if (auto it = counters.last_error_by_account.find(address);
        it != counters.last_error_by_account.end())
      a.last_delivery_error = it->second;
    const auto sending = sources_.scheduler.sending(address);
    a.sending_state = std::string(relay::to_string(sending.state));
    if (sending.resumes_at_ms) a.resumes_at = (*sending.resumes_at_ms + 999) / 1000;
    a.sending_reason = one_line(sending.reason);
    a.sent_24h = sending.sent_messages;
    if (auto it = sources_.scheduler.outages().find(address);
        it != sources_.scheduler.outages().end()) {
      a.upstream_down_since = it->second.since_ms / 1000;
      a.upstream_down_reason = one_line(it->second.reason);
      a.upstream_down_messages = it->second.deferred.size();
    }
    in.accounts.push_back(std::move(a));
  }
  in.messages_lost = counters.messages_lost;
  in.last_lost_at = counters.last_lost_at;
  in.last_lost = one_line(counters.last_lost);
  return in;
}

asio::awaitable<http_reply> health_routes::health(std::string_view) {
  auto summary = co_await sources_.spool.admin().summary();
  if (!summary) log::error("queue_summary_failed").kv("error", summary.error().detail);
  const auto in = gather(summary);
  const auto verdict = evaluate(in);
  co_return http_reply{
      verdict.healthy ? 200u : 503u, "application/json", health_json(in, verdict, version_), {}};
}

asio::awaitable<http_reply> health_routes::metrics(std::string_view) {
  auto summary = co_await sources_.spool.admin().summary();
  if (!summary) {
    // No figures rather than zeros that would read as an empty queue.
    log::error("queue_summary_failed").kv("error", summary.error().detail);
    co_return http_reply{500,
                         "text/plain; charset=utf-8",
                         "the queue could not be read: " + one_line(summary.error().detail) + "\n",
                         {}};
  }
  metrics_input in;
  in.health = gather(summary);
  const auto& c = sources_.scheduler.counters();
  in.received = sources_.spool.messages_received();
  in.bounced = c.bounced;
  in.attempts_delivered = c.attempts_delivered;
  in.attempts_deferred = c.attempts_deferred;
  in.attempts_failed = c.attempts_failed;
  in.smtp_sessions = sources_.smtp.active_sessions();
  in.upstream_connections = c.upstream_connections_active;
  co_return http_reply{
      200, "text/plain; version=0.0.4", render_metrics(in, durations_, version_), {}};
}

}  // namespace oauth_relay::daemon
