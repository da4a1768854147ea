// Health rules, problem sentences and the renderings of the health socket.
// No I/O: the health server gathers the figures and sends the text.
#include "daemon/health_report.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <limits>

#include <nlohmann/json.hpp>

#include "common/text.hpp"

namespace oauth_relay::daemon {
namespace {

using json = nlohmann::json;

bool token_problem(auth::token_state state) {
  return state == auth::token_state::needs_reauth || state == auth::token_state::missing ||
         state == auth::token_state::refresh_failing;
}

std::string token_problem_sentence(const auth::account_status& s, std::int64_t now) {
  const std::string run = "run \"oauth-relayctl authorize " + s.address + "\"";
  switch (s.state) {
    case auth::token_state::needs_reauth:
      // A service account's error names its fix (domain-wide delegation).
      if (!s.service_account.empty() && !s.last_error.empty()) return s.last_error;
      // Microsoft's cause, or Google's told apart when the refusal came.
      if (auth::names_reauth(s.last_error, s.address)) return s.last_error;
      return auth::needs_reauth_message(s.address, s.authorized_at, now);
    case auth::token_state::missing:
      return "account " + s.address + " is not authorized yet: " + run;
    case auth::token_state::refresh_failing:
      return "account " + s.address + " cannot refresh its access token" +
             (s.last_error.empty() ? std::string() : " (" + s.last_error + ")") +
             ": check that the token endpoint is reachable and the oauth settings are right, "
             "then run \"oauth-relayctl test " +
             s.address + "\"";
    default:
      return {};
  }
}

std::string waited(std::int64_t seconds) {
  if (seconds < 2 * 3600) return std::to_string(seconds / 60) + " minutes";
  if (seconds < 2 * 86400) return std::to_string(seconds / 3600) + " hours";
  return std::to_string(seconds / 86400) + " days";
}

json nullable(const std::optional<std::int64_t>& v) {
  return v ? json(*v) : json(nullptr);
}

std::string_view recipient_state(relay::recipient_status status) {
  switch (status) {
    case relay::recipient_status::delivered:
      return "delivered";
    case relay::recipient_status::failed:
      return "failed";
    case relay::recipient_status::pending:
      break;
  }
  return "pending";
}

// Seconds rounded up, so "due in 0 s" means due now.
std::int64_t ceil_seconds(std::int64_t ms) {
  return ms <= 0 ? 0 : (ms + 999) / 1000;
}

// The token's error first; otherwise the delivery error while failures last.
std::string last_error_of(const account_health& a) {
  if (!a.status.last_error.empty()) return a.status.last_error;
  if (a.failures_in_a_row > 0) return without_addresses(a.last_delivery_error, a.status.address);
  return {};
}

// RFC 5322 §3.2.3 atext, and the dot of a dot-atom.
bool local_part_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+/=?^_`{|}~.-").find(c) != std::string_view::npos;
}

// A domain's letters, digits, hyphens and dots (and the brackets of a literal).
bool domain_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '[' ||
         c == ']' || c == ':' || c == '_';
}

bool same_text(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// What a held account's problem line says: what happened, until when, and
// what a person may do (nothing is needed: the account resumes by itself).
std::string hold_sentence(const account_health& a) {
  const std::string until = a.resumes_at ? iso8601_utc(*a.resumes_at) : std::string("later");
  const std::string why = a.sending_reason.empty()
                              ? std::string()
                              : " (" + without_addresses(a.sending_reason, a.status.address) + ")";
  if (a.sending_state == "over_quota" &&
      a.sending_reason.starts_with("limits.messages_per_minute")) {
    // The relay pacing itself (Exchange Online's 30 a minute by default).
    return "account " + a.status.address + " is at its sending limit per minute" + why +
           ": its mail waits in the queue and goes out by itself from " + until +
           "; nothing is lost. To send more per minute, raise limits.messages_per_minute in the "
           "config (Exchange Online allows 30 a minute)";
  }
  if (a.sending_state == "over_quota") {
    // The relay's own limits (their reasons name the key) or Gmail's quota.
    const bool own = a.sending_reason.starts_with("limits.");
    return "account " + a.status.address + " is over its daily sending limit" + why +
           ": its mail waits in the queue and goes out by itself from " + until +
           "; nothing is lost. To send more per day, " +
           (own ? std::string("raise the account's limits in the config (Gmail allows about "
                              "500 a day, 2,000 for Google Workspace)")
                : std::string("spread the senders over more accounts or use a Google "
                              "Workspace account (2,000 a day instead of about 500)"));
  }
  return "account " + a.status.address + " is throttled by Gmail" + why +
         ": its mail waits in the queue and goes out by itself from " + until +
         "; if this happens often, lower upstream.max_connections";
}

}  // namespace

health_verdict evaluate(const health_input& in) {
  health_verdict out;
  if (!in.queue_error.empty()) {
    out.problems.push_back("the queue could not be read (" + in.queue_error +
                           "): check the state directory's disk and the journal of oauth-relay");
  }
  for (const auto& a : in.accounts) {
    if (a.sending_state != "ok") out.problems.push_back(hold_sentence(a));
    if (a.upstream_down_since && in.now - *a.upstream_down_since >= in.outage_alert_after.count()) {
      const auto down = std::max<std::int64_t>(0, in.now - *a.upstream_down_since);
      out.problems.push_back(
          "account " + a.status.address + ": the upstream has been unreachable for " +
          (down < 120 ? std::to_string(down) + " seconds" : waited(down)) + " (since " +
          iso8601_utc(*a.upstream_down_since) + ": " +
          without_addresses(a.upstream_down_reason, a.status.address) + "); " +
          std::to_string(a.upstream_down_messages) +
          " messages wait in the queue and go out by themselves once it answers. Check the "
          "network, DNS and firewall toward it and run \"oauth-relayctl test " +
          a.status.address + "\"");
    }
    if (token_problem(a.status.state)) {
      out.problems.push_back(token_problem_sentence(a.status, in.now));
    } else if (a.failures_in_a_row >= upstream_failure_limit) {
      out.problems.push_back(
          "account " + a.status.address + ": the last " + std::to_string(a.failures_in_a_row) +
          " delivery attempts failed temporarily (" +
          without_addresses(a.last_delivery_error, a.status.address) +
          "): run \"oauth-relayctl test " + a.status.address + "\" to see what fails");
    }
  }
  if (in.queue.oldest_received_at) {
    const auto age = std::max<std::int64_t>(0, in.now - *in.queue.oldest_received_at);
    if (age > queue_age_limit.count()) {
      out.problems.push_back("the oldest queued message has waited " + waited(age) +
                             " (more than 1 hour): run \"oauth-relayctl queue\" to see why it "
                             "is not delivered");
    }
  }
  if (in.messages_lost > 0 && in.now - in.last_lost_at < lost_content_window.count()) {
    out.problems.push_back(
        std::to_string(in.messages_lost) +
        (in.messages_lost == 1 ? " message was" : " messages were") +
        " failed and bounced because the content was gone from the queue (last: " + in.last_lost +
        "): check what removes or changes files in the state directory's spool/ and its disk");
  }
  out.healthy = out.problems.empty();
  return out;
}

std::string without_addresses(std::string_view text, std::string_view keep) {
  std::string out;
  std::size_t copied = 0;
  for (std::size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
    if (at < copied) continue;
    std::size_t begin = at;
    while (begin > copied && local_part_char(text[begin - 1])) --begin;
    std::size_t end = at + 1;
    while (end < text.size() && domain_char(text[end])) ++end;
    // Trailing dots and colons end a sentence ("... <a@b.example>: rejected").
    while (end > at + 1 && (text[end - 1] == '.' || text[end - 1] == ':')) --end;
    if (begin == at || end == at + 1) continue;  // not an address: "@" alone
    const auto address = text.substr(begin, end - begin);
    if (same_text(address, keep)) continue;
    out.append(text.substr(copied, begin - copied));
    out += "[address]";
    copied = end;
  }
  out.append(text.substr(copied));
  return out;
}

std::string iso8601_utc(std::int64_t unix_seconds) {
  const std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

std::string health_json(const health_input& in, const health_verdict& verdict,
                        std::string_view version) {
  json accounts = json::array();
  for (const auto& a : in.accounts) {
    const auto error = last_error_of(a);
    accounts.push_back({
        {"address", a.status.address},
        {"token_state", std::string(auth::to_string(a.status.state))},
        {"access_expires_in_seconds", nullable(a.status.access_expires_in_seconds)},
        {"last_delivery",
         a.status.last_delivery ? json(iso8601_utc(*a.status.last_delivery)) : json(nullptr)},
        {"last_error", error.empty() ? json(nullptr) : json(error)},
        {"sending_state", a.sending_state},
        {"resumes_at", a.resumes_at ? json(iso8601_utc(*a.resumes_at)) : json(nullptr)},
    });
  }
  const std::int64_t oldest = in.queue.oldest_received_at
                                  ? std::max<std::int64_t>(0, in.now - *in.queue.oldest_received_at)
                                  : 0;
  json body = {
      {"status", verdict.healthy ? "ok" : "degraded"},
      {"version", std::string(version)},
      {"uptime_seconds", in.uptime_seconds},
      {"queue",
       {{"depth", in.queue.depth},
        {"deferred", in.queue.deferred},
        {"oldest_age_seconds", oldest}}},
      {"accounts", std::move(accounts)},
      {"problems", verdict.problems},
  };
  // Replace, not throw, on bytes that are not UTF-8 (an error text from a peer).
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string queue_json(const relay::queue_page& page, std::int64_t now_ms) {
  json list = json::array();
  for (const auto& m : page.messages) {
    json recipients = json::array();
    for (const auto& r : m.recipients) {
      recipients.push_back({{"address", r.rcpt.address},
                            {"state", std::string(recipient_state(r.status))},
                            {"last_reply", r.last_reply}});
    }
    list.push_back({
        {"id", m.id},
        {"account", m.env.account},
        {"sender", m.env.sender},
        {"size", m.size},
        {"age_seconds", std::max<std::int64_t>(0, now_ms / 1000 - m.received_at)},
        {"attempts", m.attempts},
        {"next_attempt_in_seconds", ceil_seconds(m.next_attempt_ms - now_ms)},
        {"last_error", m.last_error},
        {"recipients", std::move(recipients)},
    });
  }
  json body = {
      {"messages", std::move(list)},
      {"next_after", page.next_after ? json(std::to_string(*page.next_after)) : json(nullptr)}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::optional<queue_page_request> parse_queue_page(std::string_view query, std::string& error) {
  queue_page_request out;
  // A whole decimal number, no sign, no leading '+', at most `max`.
  auto number = [](std::string_view text, std::uint64_t max) -> std::optional<std::uint64_t> {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > max)
      return std::nullopt;
    return value;
  };
  for (const auto& [key, value] : query_pairs(query)) {
    if (key == "limit") {
      const auto limit = number(value, max_queue_page);
      if (!limit || *limit == 0) {
        error = "limit must be a number from 1 to " + std::to_string(max_queue_page);
        return std::nullopt;
      }
      out.limit = static_cast<std::size_t>(*limit);
    } else if (key == "after") {
      const auto after = number(value, std::numeric_limits<std::int64_t>::max());
      if (!after) {
        error = "after must be the next_after of the previous page";
        return std::nullopt;
      }
      out.after = static_cast<std::int64_t>(*after);
    } else {
      error = "unknown parameter \"" + std::string(key) + "\": expected limit=N and after=CURSOR";
      return std::nullopt;
    }
  }
  return out;
}

std::optional<queue_selection> parse_queue_selection(std::string_view body, bool allow_all,
                                                     std::string& error) {
  const auto doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  const std::string expected = allow_all ? "expected {\"ids\":[\"ID\",...]} or {\"all\":true}"
                                         : "expected {\"ids\":[\"ID\",...]}";
  if (doc.is_discarded() || !doc.is_object()) {
    error = "the body is not a JSON object: " + expected;
    return std::nullopt;
  }
  queue_selection out;
  for (const auto& [key, value] : doc.items()) {
    if (key == "ids") {
      if (!value.is_array()) {
        error = "\"ids\" must be a list of message ids";
        return std::nullopt;
      }
      for (const auto& id : value) {
        if (!id.is_string() || id.get_ref<const std::string&>().empty()) {
          error = "\"ids\" must be a list of message ids";
          return std::nullopt;
        }
        const auto& text = id.get_ref<const std::string&>();
        if (std::find(out.ids.begin(), out.ids.end(), text) == out.ids.end())
          out.ids.push_back(text);
      }
    } else if (key == "all" && allow_all) {
      if (!value.is_boolean() || !value.get<bool>()) {
        error = "\"all\" must be true";
        return std::nullopt;
      }
      out.all = true;
    } else {
      error = "unknown key \"" + key + "\": " + expected;
      return std::nullopt;
    }
  }
  if (out.all == doc.contains("ids")) {
    error = expected;
    return std::nullopt;
  }
  return out;
}

std::string change_json(const relay::queue_change& change, std::string_view count_key) {
  json body = {{std::string(count_key), change.changed}, {"unknown", change.unknown}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::string error_json(std::string_view message) {
  json body = {{"error", std::string(message)}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// ---------------------------------------------------------------- Prometheus

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  if (ec != std::errc()) return "NaN";
  return std::string(buffer, end);
}

void metrics_text::family(std::string_view name, std::string_view type, std::string_view help) {
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  text_ += escape_help(help);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += ' ';
  text_ += type;
  text_ += '\n';
}

void metrics_text::sample(std::string_view name, const labels& l, double value) {
  text_ += name;
  if (!l.empty()) {
    text_ += '{';
    for (std::size_t i = 0; i < l.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += l[i].first;
      text_ += "=\"";
      text_ += escape_label_value(l[i].second);
      text_ += '"';
    }
    text_ += '}';
  }
  text_ += ' ';
  text_ += format_value(value);
  text_ += '\n';
}

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size() + 1, 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

void histogram::observe(double value) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[static_cast<std::size_t>(at)];
  sum_ += value;
  ++count_;
}

void histogram::render(metrics_text& out, std::string_view name) const {
  const std::string bucket = std::string(name) + "_bucket";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out.sample(bucket, {{"le", format_value(bounds_[i])}}, static_cast<double>(cumulative));
  }
  cumulative += counts_.back();
  out.sample(bucket, {{"le", "+Inf"}}, static_cast<double>(cumulative));
  out.sample(std::string(name) + "_sum", sum_);
  out.sample(std::string(name) + "_count", static_cast<double>(count_));
}

std::vector<double> delivery_duration_buckets() {
  return {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
}

std::string render_metrics(const metrics_input& in, const histogram& durations,
                           std::string_view version) {
  metrics_text m;
  auto d = [](auto v) { return static_cast<double>(v); };
  const auto& accounts = in.health.accounts;

  m.family("oauth_relay_build_info", "gauge", "Always 1; the version label says which build runs.");
  m.sample("oauth_relay_build_info", {{"version", std::string(version)}}, 1);
  m.family("oauth_relay_uptime_seconds", "gauge", "Seconds since the daemon started.");
  m.sample("oauth_relay_uptime_seconds", d(in.health.uptime_seconds));

  m.family("oauth_relay_messages_received_total", "counter",
           "Messages accepted from SMTP clients (answered 250 after the data) since start.");
  m.sample("oauth_relay_messages_received_total", d(in.received));
  m.family("oauth_relay_messages_delivered_total", "counter",
           "Messages delivered to all their recipients through each account since start.");
  for (const auto& a : accounts)
    m.sample("oauth_relay_messages_delivered_total", {{"account", a.status.address}},
             d(a.delivered));
  m.family("oauth_relay_messages_bounced_total", "counter",
           "Bounces (RFC 3464 delivery status notifications) generated since start.");
  m.sample("oauth_relay_messages_bounced_total", d(in.bounced));
  m.family("oauth_relay_delivery_attempts_total", "counter",
           "Delivery attempts by outcome since start: delivered (at least one recipient "
           "accepted), deferred (the message stays queued for another attempt), failed (the "
           "message finished with a permanent failure). An attempt that delivered to some "
           "recipients and not to others counts under both outcomes.");
  m.sample("oauth_relay_delivery_attempts_total", {{"result", "delivered"}},
           d(in.attempts_delivered));
  m.sample("oauth_relay_delivery_attempts_total", {{"result", "deferred"}},
           d(in.attempts_deferred));
  m.sample("oauth_relay_delivery_attempts_total", {{"result", "failed"}}, d(in.attempts_failed));

  const auto& q = in.health.queue;
  m.family("oauth_relay_queue_messages", "gauge", "Messages in the queue (bounces included).");
  m.sample("oauth_relay_queue_messages", d(q.depth));
  m.family("oauth_relay_queue_deferred_messages", "gauge",
           "Queued messages that have had at least one failed delivery attempt.");
  m.sample("oauth_relay_queue_deferred_messages", d(q.deferred));
  m.family("oauth_relay_queue_oldest_age_seconds", "gauge",
           "Age of the oldest queued message; 0 when the queue is empty.");
  m.sample("oauth_relay_queue_oldest_age_seconds",
           d(q.oldest_received_at ? std::max<std::int64_t>(0, in.health.now - *q.oldest_received_at)
                                  : 0));

  m.family("oauth_relay_token_refreshes_total", "counter",
           "Access token refreshes at the token endpoint since start, by account and result "
           "(ok or error).");
  for (const auto& a : accounts) {
    m.sample("oauth_relay_token_refreshes_total", {{"account", a.status.address}, {"result", "ok"}},
             d(a.status.refreshes_ok));
    m.sample("oauth_relay_token_refreshes_total",
             {{"account", a.status.address}, {"result", "error"}}, d(a.status.refreshes_failed));
  }
  m.family("oauth_relay_account_token_valid", "gauge",
           "1 when the account can get access tokens (token state valid, or expired and "
           "refreshable), 0 when it needs re-authorization, was never authorized or its "
           "refreshes fail.");
  for (const auto& a : accounts) {
    const bool valid =
        a.status.state == auth::token_state::valid || a.status.state == auth::token_state::expired;
    m.sample("oauth_relay_account_token_valid", {{"account", a.status.address}}, valid ? 1 : 0);
  }
  m.family("oauth_relay_account_delivery_failures_in_a_row", "gauge",
           "Temporary delivery failures of the account since its last delivery.");
  for (const auto& a : accounts) {
    m.sample("oauth_relay_account_delivery_failures_in_a_row", {{"account", a.status.address}},
             d(a.failures_in_a_row));
  }

  m.family("oauth_relay_account_sending_state", "gauge",
           "1 for the account's sending state now: ok, throttled (Gmail asked it to slow down) "
           "or over_quota (its daily limit is used up); 0 for the others.");
  for (const auto& a : accounts) {
    for (const char* state : {"ok", "throttled", "over_quota"}) {
      m.sample("oauth_relay_account_sending_state",
               {{"account", a.status.address}, {"state", state}}, a.sending_state == state ? 1 : 0);
    }
  }
  m.family("oauth_relay_account_sent_24h", "gauge",
           "Messages the account delivered in the last 24 hours (its limits' window).");
  for (const auto& a : accounts) {
    m.sample("oauth_relay_account_sent_24h", {{"account", a.status.address}}, d(a.sent_24h));
  }
  m.family("oauth_relay_upstream_up", "gauge",
           "0 while the account's last connection to the upstream failed (refused, timed out, "
           "TLS), else 1.");
  for (const auto& a : accounts) {
    m.sample("oauth_relay_upstream_up", {{"account", a.status.address}},
             a.upstream_down_since ? 0 : 1);
  }
  m.family("oauth_relay_smtp_sessions_active", "gauge", "Inbound SMTP sessions open now.");
  m.sample("oauth_relay_smtp_sessions_active", d(in.smtp_sessions));
  m.family("oauth_relay_upstream_connections_active", "gauge",
           "Authenticated connections to the upstream (Gmail) open now.");
  m.sample("oauth_relay_upstream_connections_active", d(in.upstream_connections));

  m.family("oauth_relay_delivery_duration_seconds", "histogram",
           "Time to send one message over an open upstream connection, from MAIL FROM to the "
           "reply to its data.");
  durations.render(m, "oauth_relay_delivery_duration_seconds");
  return m.text();
}

}  // namespace oauth_relay::daemon
