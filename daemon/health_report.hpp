// What the health socket says, computed from plain figures: the health rules
// and their problem sentences, and the JSON and Prometheus renderings.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/token_manager.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::daemon {

// Health rules. The daemon is degraded while any of these holds:
// - an account's token state is needs_reauth, missing or refresh_failing;
// - the oldest queued message arrived more than `queue_age_limit` ago (mail
//   should leave within minutes; an hour means it is stuck);
// - an account's last `upstream_failure_limit` delivery attempts in a row
//   failed temporarily (connection, TLS, login or 4xx; each failed connection
//   counts once, however many messages were waiting) with no delivery in
//   between. Not reported for an account that already has a token problem:
//   the token is the cause;
// - an account is held (sending_state throttled or over_quota): its mail
//   waits for Gmail's quota or rate, or its own limits, and resumes by itself;
// - an account's upstream has been unreachable for upstream.outage_alert_after
//   or longer;
// - the queue could not be read (its figures are then unknown, not zero);
// - a message's content was found gone (missing or damaged file) within the
//   last `lost_content_window`: it was failed with a bounce, and whatever
//   removed or damaged it may strike again.
inline constexpr std::chrono::seconds queue_age_limit{3600};
inline constexpr std::chrono::seconds lost_content_window{24 * 3600};
inline constexpr std::uint64_t upstream_failure_limit = 3;

// One account as the scheduler and the token manager see it.
struct account_health {
  auth::account_status status;
  std::uint64_t delivered = 0;          // messages fully delivered since start
  std::uint64_t failures_in_a_row = 0;  // temporary delivery failures since the last delivery
  std::string last_delivery_error;      // the last of those failures
  // "ok", "throttled" or "over_quota" (relay/delivery/provider_answers.hpp):
  // while not ok the account is held until resumes_at (unix seconds).
  std::string sending_state = "ok";
  std::optional<std::int64_t> resumes_at;
  std::string sending_reason;
  std::uint64_t sent_24h = 0;  // messages delivered in the last 24 hours
  // Set while the upstream cannot be reached for this account: since when
  // (unix seconds), why, and how many messages waited for it.
  std::optional<std::int64_t> upstream_down_since;
  std::string upstream_down_reason;
  std::uint64_t upstream_down_messages = 0;
};

struct health_input {
  std::int64_t now = 0;  // unix seconds
  // upstream.outage_alert_after: an unreachable upstream is a problem once
  // it has lasted this long (a short blip is retried without anyone looking).
  std::chrono::seconds outage_alert_after{300};
  std::int64_t uptime_seconds = 0;
  relay::queue_summary queue;
  std::string queue_error;  // why the queue could not be read; empty when it was
  std::vector<account_health> accounts;
  std::uint64_t messages_lost = 0;  // failed since start because their content was gone
  std::int64_t last_lost_at = 0;    // unix seconds of the last, 0 for none
  std::string last_lost;            // "ID: why" of the last
};

struct health_verdict {
  bool healthy = true;
  std::vector<std::string> problems;  // one sentence each, saying what to do
};

health_verdict evaluate(const health_input& in);

// `text` with every mail address other than `keep` (compared without case)
// replaced by "[address]": an upstream's reply may quote a message's sender
// or recipient, which monitoring must not see. The account's own address stays.
std::string without_addresses(std::string_view text, std::string_view keep);

// 2026-11-30T08:00:00Z
std::string iso8601_utc(std::int64_t unix_seconds);

// The bodies of GET /health (health socket: no message's sender or
// recipients) and GET /queue (control socket).
std::string health_json(const health_input& in, const health_verdict& verdict,
                        std::string_view version);
// GET /queue: {"messages":[...],"next_after":"CURSOR" or null}.
std::string queue_json(const relay::queue_page& page, std::int64_t now_ms);

// GET /queue's query string: limit=N (1 to max_queue_page, default
// default_queue_page) and after=CURSOR (a next_after the previous page gave;
// none: from the oldest). The daemon never builds more than one page, so a
// million queued messages cost a listing no more than a hundred.
inline constexpr std::size_t default_queue_page = 100;
inline constexpr std::size_t max_queue_page = 1000;
struct queue_page_request {
  std::int64_t after = 0;
  std::size_t limit = default_queue_page;
};
// Unset with `error` saying what is wrong (for a 400).
std::optional<queue_page_request> parse_queue_page(std::string_view query, std::string& error);

// The body of POST /queue/retry and /queue/delete: {"ids":["ID",...]} or,
// where `allow_all`, {"all":true}. Ids are deduplicated, order kept.
struct queue_selection {
  bool all = false;
  std::vector<std::string> ids;
};
// Unset with `error` saying what is wrong (for a 400).
std::optional<queue_selection> parse_queue_selection(std::string_view body, bool allow_all,
                                                     std::string& error);
// {"changed":N,"unknown":[...]} with `count_key` for "changed".
std::string change_json(const relay::queue_change& change, std::string_view count_key);
// {"error":"..."}
std::string error_json(std::string_view message);

// ---------------------------------------------------------------- Prometheus

// Label values escape backslash, double quote and line feed (text format 0.0.4).
std::string escape_label_value(std::string_view value);
// HELP text escapes backslash and line feed.
std::string escape_help(std::string_view text);
// Shortest text that reads back as the same double; +Inf, -Inf, NaN.
std::string format_value(double value);

using labels = std::vector<std::pair<std::string, std::string>>;

// Builds an exposition: each family's HELP and TYPE, then its samples.
class metrics_text {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const labels& l, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// A cumulative histogram kept by the health server from the scheduler's
// delivery durations.
class histogram {
 public:
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double value);
  // NAME_bucket{le=...} (cumulative, +Inf last), NAME_sum, NAME_count.
  void render(metrics_text& out, std::string_view name) const;
  std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; one more for +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// Seconds from connecting to the upstream's reply to the end of data.
std::vector<double> delivery_duration_buckets();

struct metrics_input {
  health_input health;
  std::uint64_t received = 0;
  std::uint64_t bounced = 0;
  std::uint64_t attempts_delivered = 0;
  std::uint64_t attempts_deferred = 0;
  std::uint64_t attempts_failed = 0;
  std::size_t smtp_sessions = 0;
  std::size_t upstream_connections = 0;
};

std::string render_metrics(const metrics_input& in, const histogram& durations,
                           std::string_view version);

}  // namespace oauth_relay::daemon
