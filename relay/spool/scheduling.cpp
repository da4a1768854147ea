// Each query is one job for the writer thread. The due query and the updates
// keep the queue's hot path cheap: claimed rows are skipped by id alone, the
// content lives in its own table, postponing touches only mail that is due.
#include "relay/spool/scheduling.hpp"

#include <span>

#include <boost/asio/use_awaitable.hpp>

#include "common/clock.hpp"
#include "relay/message_id.hpp"
#include "relay/spool/rows.hpp"

namespace oauth_relay::relay {
namespace {

using boost::asio::use_awaitable;

constexpr const char* update_recipient =
    "UPDATE recipients SET status = ?1, last_reply = ?2 WHERE message_id = ?3 AND position = ?4";
constexpr const char* update_message =
    "UPDATE messages SET attempts = attempts + ?1, next_attempt_ms = ?2, last_error = ?3, "
    "delay_warned = max(delay_warned, ?5) WHERE id = ?4";
// min(): a parked message comes up again when it is to expire, so it is
// bounced then, and when its delay warning is due (if not sent and still
// ahead); one statement for the account, whatever the number of rows.
constexpr const char* postpone_due =
    "UPDATE messages SET next_attempt_ms = min(?1, received_at * 1000 + ?5, "
    "CASE WHEN ?6 > 0 AND delay_warned = 0 AND received_at * 1000 + ?6 > ?4 "
    "THEN received_at * 1000 + ?6 ELSE ?1 END), last_error = ?3 "
    "WHERE account = ?2 COLLATE NOCASE AND next_attempt_ms <= ?4";
// A slice of at most ?3 rows at a time, found through messages_account_due
// (or messages_due for every account): each slice seeks straight to the rows
// not yet changed.
constexpr const char* reschedule_account =
    "UPDATE messages SET next_attempt_ms = ?1 WHERE rowid IN (SELECT rowid FROM messages "
    "WHERE account = ?2 COLLATE NOCASE AND next_attempt_ms > ?1 LIMIT ?3)";
constexpr const char* reschedule_all =
    "UPDATE messages SET next_attempt_ms = ?1 WHERE rowid IN (SELECT rowid FROM messages "
    "WHERE next_attempt_ms > ?1 LIMIT ?3)";
// Rows per slice: a few milliseconds of the writer's time.
constexpr std::int64_t reschedule_slice = 1000;

// The sending record: a row per delivered message, and the rows that left
// the 24-hour window go as new ones come (the index on sent_at_ms keeps both
// cheap).
constexpr const char* insert_sent =
    "INSERT INTO sent_log(account, sent_at_ms, recipients) VALUES (?1, ?2, ?3)";
constexpr const char* prune_sent = "DELETE FROM sent_log WHERE sent_at_ms <= ?1";
constexpr std::int64_t sent_window_ms = 24 * 3600 * 1000;  // Gmail's rolling day
constexpr const char* select_sent =
    "SELECT account, sent_at_ms, recipients FROM sent_log WHERE sent_at_ms > ?1 "
    "ORDER BY sent_at_ms";
constexpr const char* select_holds =
    "SELECT account, state, since_ms, resumes_at_ms, throttles, reason FROM account_holds";
constexpr const char* upsert_hold =
    "INSERT INTO account_holds(account, state, since_ms, resumes_at_ms, throttles, reason) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(account) DO UPDATE SET state = ?2, "
    "since_ms = ?3, resumes_at_ms = ?4, throttles = ?5, reason = ?6";
constexpr const char* delete_hold = "DELETE FROM account_holds WHERE account = ?1";

// A large content's file is opened after the (read-only) transaction, so
// that never holds up the batch's commit; it is read later, in pieces, by
// whoever delivers it.
struct content_job {
  std::string id;
  rows::content_location where;  // set inside the transaction

  spool_result<message_content> apply(writer_context& ctx) {
    auto found = rows::find_content(ctx.statements(), id);
    if (!found) return found.error();
    where = std::move(*found);
    return message_content();
  }
  void committed(writer_context& ctx, spool_result<message_content>& result) {
    if (result) result = rows::open_content(ctx.files_dir(), id, std::move(where));
  }
};

}  // namespace

boost::asio::awaitable<spool_result<due_mail>> scheduling_queries::due(due_request request) {
  return writer_.run<due_mail>(
      [request = std::move(request)](writer_context& ctx) {
        return spool_result<due_mail>(rows::due(ctx.statements(), request));
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<std::optional<std::int64_t>>> scheduling_queries::next_due() {
  return writer_.run<std::optional<std::int64_t>>(
      [](writer_context& ctx) {
        return spool_result<std::optional<std::int64_t>>(rows::next_due(ctx.statements()));
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<message_content>> scheduling_queries::content(std::string id) {
  return writer_.run<message_content>(content_job{std::move(id), {}}, use_awaitable);
}

boost::asio::awaitable<spool_result<void>> scheduling_queries::record(
    delivery_record record, std::optional<generated_message> bounce) {
  // Named before the job runs: a job may run twice, the bounce keeps one id.
  std::string bounce_id = bounce ? new_message_id() : std::string();
  return writer_.run<void>(
      [record = std::move(record), bounce = std::move(bounce),
       bounce_id = std::move(bounce_id)](writer_context& ctx) -> spool_result<void> {
        // A finished message's recipients go with it: not updated first.
        const auto no_updates = std::span<const recipient_update>();
        auto& recipient = ctx.prepared(update_recipient);
        for (const auto& r : record.finished ? no_updates : std::span(record.recipients)) {
          recipient.bind(1, static_cast<std::int64_t>(r.status));
          recipient.bind(2, std::string_view(r.reply));
          recipient.bind(3, std::string_view(record.id));
          recipient.bind(4, static_cast<std::int64_t>(r.position));
          recipient.run();
        }
        if (record.finished) {
          auto removed = rows::delete_message(ctx.statements(), record.id);
          if (!removed.file.empty()) ctx.remove_after_commit(std::move(removed.file));
        } else {
          auto& message = ctx.prepared(update_message);
          message.bind(1, static_cast<std::int64_t>(record.count_attempt ? 1 : 0));
          message.bind(2, record.next_attempt_ms);
          message.bind(3, std::string_view(record.last_error));
          message.bind(4, std::string_view(record.id));
          message.bind(5, static_cast<std::int64_t>(record.delay_warned ? 1 : 0));
          message.run();
        }
        if (record.sent_recipients > 0) {
          auto& sent = ctx.prepared(insert_sent);
          sent.bind(1, std::string_view(record.account));
          sent.bind(2, record.sent_at_ms);
          sent.bind(3, static_cast<std::int64_t>(record.sent_recipients));
          sent.run();
          auto& prune = ctx.prepared(prune_sent);
          prune.bind(1, record.sent_at_ms - sent_window_ms);
          prune.run();
        }
        if (bounce) {
          ctx.message_stored(rows::insert_message(ctx.statements(), bounce_id, bounce->env,
                                                  now_ms(),
                                                  {.size = bounce->content.size(),
                                                   .memory = bounce->content,
                                                   .eight_bit = has_8bit(bounce->content)},
                                                  ctx.last_position()));
        }
        return {};
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<std::size_t>> scheduling_queries::postpone(
    std::string account, std::int64_t until_ms, parking_limits limits, std::string reason) {
  return writer_.run<std::size_t>(
      [account = std::move(account), until_ms, limits,
       reason = std::move(reason)](writer_context& ctx) -> spool_result<std::size_t> {
        auto& st = ctx.prepared(postpone_due);
        st.bind(1, until_ms);
        st.bind(2, std::string_view(account));
        st.bind(3, std::string_view(reason));
        // Only what is due now: mail parked earlier is not rewritten again.
        st.bind(4, now_ms());
        st.bind(5, limits.lifetime_ms);
        st.bind(6, limits.delay_warning_ms);
        st.run();
        return static_cast<std::size_t>(ctx.db().changes());
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<std::size_t>> scheduling_queries::reschedule(
    std::string account, std::int64_t when_ms) {
  std::size_t changed = 0;
  for (;;) {
    auto slice = co_await writer_.run<std::size_t>(
        [&account, when_ms](writer_context& ctx) -> spool_result<std::size_t> {
          auto& st = ctx.prepared(account.empty() ? reschedule_all : reschedule_account);
          st.bind(1, when_ms);
          if (!account.empty()) st.bind(2, std::string_view(account));
          st.bind(3, reschedule_slice);
          st.run();
          return static_cast<std::size_t>(ctx.db().changes());
        },
        use_awaitable);
    if (!slice) co_return slice.error();
    changed += *slice;
    if (*slice < static_cast<std::size_t>(reschedule_slice)) co_return changed;
  }
}

boost::asio::awaitable<spool_result<sending_record>> scheduling_queries::sending_history(
    std::int64_t since_ms) {
  return writer_.run<sending_record>(
      [since_ms](writer_context& ctx) -> spool_result<sending_record> {
        sending_record out;
        auto& sent = ctx.prepared(select_sent);
        db::reset_on_exit reset_sent(sent);
        sent.bind(1, since_ms);
        while (sent.step()) {
          out.sent.push_back(
              sent_row{sent.text(0), sent.int64(1), static_cast<std::size_t>(sent.int64(2))});
        }
        auto& holds = ctx.prepared(select_holds);
        db::reset_on_exit reset_holds(holds);
        while (holds.step()) {
          hold_row h{holds.text(0),  holds.text(1),  holds.int64(2),
                     holds.int64(3), holds.int32(4), holds.text(5)};
          if (h.resumes_at_ms > since_ms) out.holds.push_back(std::move(h));
        }
        return out;
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<void>> scheduling_queries::save_hold(
    std::string account, std::optional<hold_row> hold) {
  return writer_.run<void>(
      [account = std::move(account),
       hold = std::move(hold)](writer_context& ctx) -> spool_result<void> {
        if (!hold) {
          auto& st = ctx.prepared(delete_hold);
          st.bind(1, std::string_view(account));
          st.run();
          return {};
        }
        auto& st = ctx.prepared(upsert_hold);
        st.bind(1, std::string_view(account));
        st.bind(2, std::string_view(hold->state));
        st.bind(3, hold->since_ms);
        st.bind(4, hold->resumes_at_ms);
        st.bind(5, static_cast<std::int64_t>(hold->throttles));
        st.bind(6, std::string_view(hold->reason));
        st.run();
        return {};
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<queue_change>> scheduling_queries::remove(
    std::vector<std::string> ids) {
  return writer_.run<queue_change>(
      [ids = std::move(ids)](writer_context& ctx) -> spool_result<queue_change> {
        queue_change change;
        for (const auto& id : ids) {
          auto removed = rows::delete_message(ctx.statements(), id);
          // Content files go only once no row names them.
          if (!removed.file.empty()) ctx.remove_after_commit(std::move(removed.file));
          if (removed.found) {
            ++change.changed;
          } else {
            change.unknown.push_back(id);
          }
        }
        return change;
      },
      use_awaitable);
}

}  // namespace oauth_relay::relay
