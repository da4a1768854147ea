// The delivery decision: merges this attempt's per-recipient results into the
// queued state, fails what outlived queue.lifetime, picks the next attempt
// and the error shown for the message, and builds the bounce when it is done.
#include "relay/delivery/decision.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

#include "auth/microsoft_errors.hpp"
#include "common/backoff.hpp"
#include "relay/delivery/bounce.hpp"

namespace oauth_relay::relay {
namespace {

// "550 5.1.1 text" → "5.1.1"; anything else → `fallback`.
std::string status_of(const std::string& reply_text, const char* fallback) {
  if (reply_text.size() > 9 && reply_text[3] == ' ' &&
      std::isdigit(static_cast<unsigned char>(reply_text[4])) && reply_text[5] == '.') {
    const auto end = reply_text.find(' ', 4);
    return reply_text.substr(4, end - 4);
  }
  return fallback;
}

// One recipient as it stands after this attempt.
struct recipient_state {
  recipient_status status = recipient_status::pending;
  std::string reply;
  // Whether `reply` came from the upstream. Replies stored by earlier
  // attempts are taken as the upstream's: only expiry (below) is the relay's
  // own, and it finishes the message.
  bool from_upstream = true;
};

recipient_status status_of(delivery_status s) {
  switch (s) {
    case delivery_status::delivered:
      return recipient_status::delivered;
    case delivery_status::failed:
      return recipient_status::failed;
    case delivery_status::deferred:
      break;
  }
  return recipient_status::pending;
}

std::size_t count(const std::vector<recipient_state>& all, recipient_status s) {
  return static_cast<std::size_t>(std::count_if(
      all.begin(), all.end(), [s](const recipient_state& r) { return r.status == s; }));
}

// The reason an attempt gives for what is still pending.
std::string reason_of(const queued_message& m, const attempt& what, std::int64_t now_ms) {
  if (const auto* sent = std::get_if<sent_upstream>(&what)) return sent->result.message;
  if (const auto* unsent = std::get_if<not_sent>(&what)) return unsent->reason;
  if (const auto* lost = std::get_if<content_lost>(&what)) return lost->reason;
  const auto age_seconds = now_ms / 1000 - m.received_at;
  // A lifetime under an hour (a test's, or an impatient admin's) would read "0 hours".
  const std::string age = age_seconds >= 3600 ? std::to_string(age_seconds / 3600) + " hours"
                                              : std::to_string(age_seconds) + " seconds";
  return "message expired after " + age + " in the queue: " + m.last_error;
}

int severity(sending_state s) {
  return s == sending_state::over_quota ? 2 : s == sending_state::throttled ? 1 : 0;
}

void consider(std::optional<answer_found>& best, const smtp::reply& r) {
  const auto* a = classify(r);
  if (!a) return;
  if (best && severity(best->answer->state) >= severity(a->state)) return;
  best = answer_found{a, smtp::to_line(r)};
}

// What a notice to the sender (a delay warning or a bounce) says of `m`,
// before the recipients it is about.
bounce_input notice_about(const queued_message& m, const delivery_policy& policy,
                          std::optional<std::string_view> content, std::int64_t now_ms) {
  bounce_input in;
  in.reporting_host = policy.reporting_host;
  in.upstream_host = policy.upstream_host;
  in.original_id = m.id;
  in.arrival_time = m.received_at;
  in.now = now_ms / 1000;
  in.original = m.env;
  in.original_content = content;
  in.original_size = m.size;
  return in;
}

}  // namespace

std::optional<answer_found> provider_answer_in(const attempt& what) {
  std::optional<answer_found> best;
  if (const auto* sent = std::get_if<sent_upstream>(&what)) {
    for (const auto& r : sent->result.recipients) {
      if (r.from_upstream) consider(best, r.reply);
    }
    if (sent->result.mail_reply) consider(best, *sent->result.mail_reply);
    if (sent->result.data_reply) consider(best, *sent->result.data_reply);
  } else if (const auto* unsent = std::get_if<not_sent>(&what)) {
    if (unsent->refusal) consider(best, *unsent->refusal);
  }
  return best;
}

std::optional<auth::advice> provider_advice_in(const attempt& what, std::string_view account) {
  const auto* sent = std::get_if<sent_upstream>(&what);
  if (sent == nullptr) return std::nullopt;
  std::vector<const smtp::reply*> replies;
  if (sent->result.mail_reply) replies.push_back(&*sent->result.mail_reply);
  if (sent->result.data_reply) replies.push_back(&*sent->result.data_reply);
  for (const auto& r : sent->result.recipients) {
    if (r.from_upstream) replies.push_back(&r.reply);
  }
  for (const smtp::reply* r : replies) {
    const std::string_view text = r->lines.empty() ? std::string_view() : r->lines.front();
    if (auto why = auth::explain_exchange_reply(r->code, r->enhanced, text, account)) return why;
  }
  return std::nullopt;
}

std::chrono::milliseconds delivery_policy::backoff(int failures) const {
  return oauth_relay::backoff(retry_initial, retry_max, failures);
}

bool past_lifetime(const queued_message& m, const delivery_policy& policy, std::int64_t now_ms) {
  return std::chrono::seconds(now_ms / 1000 - m.received_at) >= policy.lifetime;
}

bool delay_warning_due(const queued_message& m, const delivery_policy& policy,
                       std::int64_t now_ms) {
  return policy.delay_warning.count() > 0 && !m.delay_warned &&
         std::chrono::seconds(now_ms / 1000 - m.received_at) >= policy.delay_warning;
}

delivery_decision decide(const queued_message& m, const attempt& what,
                         const delivery_policy& policy, std::int64_t now_ms,
                         std::optional<std::string_view> content,
                         std::optional<std::int64_t> held_until_ms) {
  delivery_decision out;
  delivery_record& rec = out.record;
  attempt_report& report = out.report;
  rec.id = m.id;
  const auto* sent = std::get_if<sent_upstream>(&what);
  const auto* unsent = std::get_if<not_sent>(&what);
  const std::string reason = reason_of(m, what, now_ms);

  std::vector<recipient_state> state;
  for (const auto& r : m.recipients) state.push_back({r.status, r.last_reply, true});

  // The results answer the pending recipients, in order.
  if (sent) {
    const auto& results = sent->result.recipients;
    std::size_t k = 0;
    for (std::size_t i = 0; i < state.size() && k < results.size(); ++i) {
      if (state[i].status != recipient_status::pending) continue;
      const auto& result = results[k++];
      // Gmail's quota and rate answers are about the account, never the
      // recipient: even a 550 5.4.5 leaves it pending.
      const bool about_account = result.from_upstream && classify(result.reply) != nullptr;
      const auto status = about_account ? recipient_status::pending : status_of(result.status);
      state[i] = {status, smtp::to_line(result.reply), result.from_upstream};
      if (state[i].status == recipient_status::delivered) ++report.delivered_now;
      rec.recipients.push_back({i, state[i].status, state[i].reply});
    }
  }

  // What outlived the queue's lifetime fails with the relay's own reason
  // (RFC 3463 §3.5, X.4.7 delivery time expired), never the upstream's; so
  // does what can never be sent because its content is gone (X.3.0).
  const bool any_pending = count(state, recipient_status::pending) > 0;
  const bool lost = std::holds_alternative<content_lost>(what);
  const bool expired = any_pending && !lost &&
                       (std::holds_alternative<too_old>(what) || past_lifetime(m, policy, now_ms));
  const char* own_status = lost ? "5.3.0" : "4.4.7";
  const bool own_failure = expired || (lost && any_pending);
  if (own_failure) {
    for (std::size_t i = 0; i < state.size(); ++i) {
      if (state[i].status != recipient_status::pending) continue;
      state[i] = {recipient_status::failed, std::string(own_status) + " " + reason, false};
      rec.recipients.push_back({i, recipient_status::failed, state[i].reply});
    }
  }

  rec.finished = count(state, recipient_status::pending) == 0;
  if (!rec.finished) {
    // attempts counts the attempts before this one, so this is failure
    // number attempts + 1: the first waits retry_initial.
    const auto wait =
        unsent && unsent->retry_after ? *unsent->retry_after : policy.backoff(m.attempts + 1);
    // No later than its expiry: then it is bounced, not some backoff later.
    const std::int64_t expires_ms =
        m.received_at * 1000 +
        std::chrono::duration_cast<std::chrono::milliseconds>(policy.lifetime).count();
    const std::int64_t next = held_until_ms ? *held_until_ms : now_ms + wait.count();
    rec.next_attempt_ms = std::min(next, expires_ms);
    rec.last_error = reason.empty() && sent ? "some recipients deferred" : reason;
    // The upstream's own words for a pending recipient say more than a summary.
    if (sent) {
      for (const auto& r : state) {
        if (r.status == recipient_status::pending && !r.reply.empty()) rec.last_error = r.reply;
      }
    }
  }

  if (!rec.finished && delay_warning_due(m, policy, now_ms)) {
    // Once, whether or not a recipient asked for it: the next attempts need
    // not look again.
    rec.delay_warned = true;
    bounce_input in = notice_about(m, policy, content, now_ms);
    in.delayed = true;
    in.retry_until = m.received_at + policy.lifetime.count();
    for (std::size_t i = 0; i < state.size(); ++i) {
      if (state[i].status != recipient_status::pending) continue;
      failed_recipient f;
      f.rcpt = m.recipients[i].rcpt;
      f.diagnostic = state[i].reply.empty() ? rec.last_error : state[i].reply;
      const std::string status = status_of(state[i].reply, "4.0.0");
      f.status = status.starts_with("4.") ? status : "4.0.0";
      f.from_upstream = sent != nullptr && !state[i].reply.empty();
      in.failed.push_back(std::move(f));
    }
    out.bounce = make_bounce(in);
  }

  if (rec.finished) {
    bounce_input in = notice_about(m, policy, content, now_ms);
    for (std::size_t i = 0; i < state.size(); ++i) {
      if (state[i].status != recipient_status::failed) continue;
      failed_recipient f;
      f.rcpt = m.recipients[i].rcpt;
      f.diagnostic = state[i].reply;
      f.status =
          own_failure && !state[i].from_upstream ? own_status : status_of(state[i].reply, "5.0.0");
      f.from_upstream = state[i].from_upstream;
      in.failed.push_back(std::move(f));
    }
    // make_bounce gives nothing for a bounce (null sender) or when no
    // recipient asked for a notice.
    if (!in.failed.empty()) out.bounce = make_bounce(in);
  }

  report.failed = count(state, recipient_status::failed);
  report.outcome = !rec.finished       ? message_outcome::deferred
                   : report.failed > 0 ? message_outcome::failed
                                       : message_outcome::delivered;
  report.attempt_number = m.attempts + 1;
  report.reason = reason;
  report.counts_delivered = report.delivered_now > 0;
  report.counts_deferred = !rec.finished;
  report.counts_failed = sent && rec.finished && report.failed > 0;
  const auto answer = provider_answer_in(what);
  if (answer) report.held = answer->answer->state;
  report.account_failure = sent && report.delivered_now == 0 && !rec.finished && !answer;
  if (report.delivered_now > 0) {
    rec.account = m.env.account;
    rec.sent_recipients = report.delivered_now;
    rec.sent_at_ms = now_ms;
  }
  return out;
}

}  // namespace oauth_relay::relay
