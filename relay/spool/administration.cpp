// Administrative queries run on an administrator's request, never on the
// delivery path; they share the writer's thread and statement cache.
#include "relay/spool/administration.hpp"

#include <boost/asio/use_awaitable.hpp>

#include "relay/spool/rows.hpp"

namespace oauth_relay::relay {
namespace {

using boost::asio::use_awaitable;

// Constant time at any depth: the counts are kept by queue.db's triggers
// (db/schema.cpp, version 9) and the oldest arrival is one seek in
// messages_age, so a monitoring scrape costs the writer the same at a
// million queued messages as at none.
constexpr const char* summarize =
    "SELECT c.messages, c.deferred, (SELECT min(received_at) FROM messages) "
    "FROM queue_counts c WHERE c.id = 1";
constexpr const char* retry_all = "UPDATE messages SET next_attempt_ms = min(next_attempt_ms, ?1)";
constexpr const char* retry_one =
    "UPDATE messages SET next_attempt_ms = min(next_attempt_ms, ?1) WHERE id = ?2";

}  // namespace

boost::asio::awaitable<spool_result<queue_summary>> admin_queries::summary() {
  return writer_.run<queue_summary>(
      [](writer_context& ctx) -> spool_result<queue_summary> {
        auto& st = ctx.prepared(summarize);
        db::reset_on_exit reset(st);
        if (!st.step()) return spool_failure{spool_errc::failed, "the queue summary has no row"};
        queue_summary out;
        out.depth = static_cast<std::size_t>(st.int64(0));
        out.deferred = static_cast<std::size_t>(st.int64(1));
        out.oldest_received_at = st.optional_int64(2);
        return out;
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<queue_page>> admin_queries::list(std::int64_t after,
                                                                     std::size_t limit) {
  return writer_.run<queue_page>(
      [after, limit](writer_context& ctx) {
        return spool_result<queue_page>(rows::page(ctx.statements(), after, limit));
      },
      use_awaitable);
}

boost::asio::awaitable<spool_result<queue_change>> admin_queries::retry(
    std::vector<std::string> ids, bool all, std::int64_t when_ms) {
  return writer_.run<queue_change>(
      [ids = std::move(ids), all, when_ms](writer_context& ctx) -> spool_result<queue_change> {
        queue_change change;
        if (all) {
          ctx.prepared(retry_all).bind(1, when_ms).run();
          change.changed = static_cast<std::size_t>(ctx.db().changes());
          return change;
        }
        auto& st = ctx.prepared(retry_one);
        for (const auto& id : ids) {
          st.bind(1, when_ms).bind(2, std::string_view(id)).run();
          if (ctx.db().changes() > 0) {
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
