// The SQL of the message rows. Each statement is a constant so the writer's
// statement cache prepares it once; the column lists exist once, below.
#include "relay/spool/rows.hpp"

#include <utility>

namespace oauth_relay::relay::rows {
namespace {

// The columns read_message() reads, in its order.
#define OAUTH_RELAY_MESSAGE_COLUMNS                                                         \
  "id, received_at, sender, account, body_type, smtputf8, dsn_ret, envid, size, attempts, " \
  "next_attempt_ms, last_error, delay_warned"

constexpr const char* select_due =
    "SELECT " OAUTH_RELAY_MESSAGE_COLUMNS
    " FROM messages WHERE next_attempt_ms <= ?1 ORDER BY next_attempt_ms, rowid LIMIT ?2";
// Same second: arrival (rowid) order decides.
constexpr const char* select_all =
    "SELECT " OAUTH_RELAY_MESSAGE_COLUMNS " FROM messages ORDER BY received_at, rowid";
// The rowid is the message's position: a new row gets one past the largest
// and past any given before (insert_message_row), so rowid order is arrival
// order.
constexpr const char* select_page =
    "SELECT " OAUTH_RELAY_MESSAGE_COLUMNS
    ", rowid FROM messages WHERE rowid > ?1 ORDER BY rowid LIMIT ?2";

#undef OAUTH_RELAY_MESSAGE_COLUMNS

// The columns read_recipients() reads, in its order.
constexpr const char* select_recipients =
    "SELECT address, notify, orcpt, status, last_reply FROM recipients "
    "WHERE message_id = ?1 ORDER BY position";
constexpr const char* select_next_due = "SELECT min(next_attempt_ms) FROM messages";
constexpr const char* select_last_position = "SELECT max(rowid) FROM messages";
constexpr const char* select_content =
    "SELECT c.data, m.content_file, m.size, m.eight_bit FROM messages m LEFT JOIN contents c "
    "ON c.id = m.content_id WHERE m.id = ?1";
// The position is given, not left to SQLite, which reuses the rowid of the
// newest row once it is deleted (writer_context::last_position).
constexpr const char* insert_message_row =
    "INSERT INTO messages(rowid, id, received_at, sender, account, body_type, smtputf8, dsn_ret, "
    "envid, size, content_id, content_file, next_attempt_ms, eight_bit) "
    "VALUES(max(?14, (SELECT coalesce(max(rowid), 0) + 1 FROM messages)),"
    "?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)";
constexpr const char* insert_recipient_row =
    "INSERT INTO recipients(message_id, position, address, notify, orcpt) VALUES(?1,?2,?3,?4,?5)";
constexpr const char* insert_content_row = "INSERT INTO contents(data) VALUES(?1)";
constexpr const char* delete_message_row =
    "DELETE FROM messages WHERE id = ?1 RETURNING content_file, content_id";
constexpr const char* delete_content_row = "DELETE FROM contents WHERE id = ?1";
constexpr const char* select_own_file =
    "SELECT 1 FROM messages WHERE id = ?1 AND content_file = ?1";
constexpr const char* select_content_files =
    "SELECT content_file FROM messages WHERE content_file IS NOT NULL";

// NOTIFY flags as stored: bit 0 specified, 1 never, 2 success, 3 failure, 4 delay.
std::int64_t encode_notify(const smtp::dsn_notify& n) {
  return (n.specified ? 1 : 0) | (n.never ? 2 : 0) | (n.success ? 4 : 0) | (n.failure ? 8 : 0) |
         (n.delay ? 16 : 0);
}

smtp::dsn_notify decode_notify(int v) {
  smtp::dsn_notify n;
  n.specified = v & 1;
  n.never = v & 2;
  n.success = v & 4;
  n.failure = v & 8;
  n.delay = v & 16;
  return n;
}

queued_message read_message(const db::statement& s) {
  queued_message q;
  q.id = s.text(0);
  q.received_at = s.int64(1);
  q.env.sender = s.text(2);
  q.env.account = s.text(3);
  q.env.params.body = static_cast<smtp::body_type>(s.int32(4));
  q.env.params.smtputf8 = s.int32(5) != 0;
  q.env.params.ret = static_cast<smtp::dsn_ret>(s.int32(6));
  q.env.params.envid = s.text(7);
  q.size = static_cast<std::uint64_t>(s.int64(8));
  q.attempts = s.int32(9);
  q.next_attempt_ms = s.int64(10);
  q.last_error = s.text(11);
  q.delay_warned = s.int32(12) != 0;
  return q;
}

void read_recipients(db::statement& r, queued_message& q) {
  db::reset_on_exit reset(r);
  r.bind(1, std::string_view(q.id));
  while (r.step()) {
    queued_recipient qr;
    qr.rcpt.address = r.text(0);
    qr.rcpt.params.notify = decode_notify(r.int32(1));
    qr.rcpt.params.orcpt = r.text(2);
    qr.status = static_cast<recipient_status>(r.int32(3));
    qr.last_reply = r.text(4);
    q.env.recipients.push_back(qr.rcpt);
    q.recipients.push_back(std::move(qr));
  }
}

void read_all_recipients(db::statement_cache& sql, std::vector<queued_message>& messages) {
  auto& r = sql.get(select_recipients);
  for (auto& q : messages) read_recipients(r, q);
}

}  // namespace

due_mail due(db::statement_cache& sql, const due_request& request) {
  due_mail out;
  // Arrivals first: a message both could take goes to the fresh share.
  if (!request.arrived_after) {
    auto& last = sql.get(select_last_position);
    db::reset_on_exit reset(last);
    out.arrived_through = last.step() ? last.optional_int64(0).value_or(0) : 0;
  } else {
    out.arrived_through = *request.arrived_after;
    if (request.fresh > 0) {
      auto& st = sql.get(select_page);
      db::reset_on_exit reset(st);
      st.bind(1, *request.arrived_after);
      // Busy rows are passed over: read at most that many more.
      st.bind(2, static_cast<std::int64_t>(request.fresh + request.busy.size()));
      while (st.step()) {
        out.arrived_through = st.int64(13);
        if (request.busy.find(st.text_view(0)) != request.busy.end()) continue;
        if (st.int64(10) > request.now_ms) continue;  // deferred: due oldest first later
        out.fresh.push_back(read_message(st));
        if (out.fresh.size() >= request.fresh) break;
      }
    }
  }
  if (request.oldest > 0) {
    message_id_set fresh_ids;
    for (const auto& m : out.fresh) fresh_ids.insert(m.id);
    auto& st = sql.get(select_due);
    db::reset_on_exit reset(st);
    st.bind(1, request.now_ms);
    // Fetch enough to fill the limit after leaving out the busy and fresh ones.
    st.bind(2, static_cast<std::int64_t>(request.oldest + request.busy.size() + out.fresh.size()));
    while (st.step()) {
      // Claimed rows are skipped by id alone: under a backlog they are most
      // of what the query steps over.
      const auto id = st.text_view(0);
      if (request.busy.find(id) != request.busy.end()) continue;
      if (fresh_ids.find(id) != fresh_ids.end()) continue;
      out.oldest.push_back(read_message(st));
      if (out.oldest.size() >= request.oldest) break;
    }
  }
  read_all_recipients(sql, out.oldest);
  read_all_recipients(sql, out.fresh);
  return out;
}

std::vector<queued_message> all(db::statement_cache& sql) {
  std::vector<queued_message> out;
  auto& st = sql.get(select_all);
  {
    db::reset_on_exit reset(st);
    while (st.step()) out.push_back(read_message(st));
  }
  read_all_recipients(sql, out);
  return out;
}

queue_page page(db::statement_cache& sql, std::int64_t after, std::size_t limit) {
  queue_page out;
  if (limit == 0) return out;
  auto& st = sql.get(select_page);
  {
    db::reset_on_exit reset(st);
    st.bind(1, after);
    // One more than asked: whether another page follows, without counting.
    st.bind(2, static_cast<std::int64_t>(limit) + 1);
    std::int64_t last = after;
    while (st.step()) {
      if (out.messages.size() == limit) {
        out.next_after = last;
        break;
      }
      out.messages.push_back(read_message(st));
      last = st.int64(13);
    }
  }
  read_all_recipients(sql, out.messages);
  return out;
}

std::optional<std::int64_t> next_due(db::statement_cache& sql) {
  auto& st = sql.get(select_next_due);
  db::reset_on_exit reset(st);
  if (!st.step()) return std::nullopt;
  return st.optional_int64(0);
}

spool_result<content_location> find_content(db::statement_cache& sql, std::string_view id) {
  auto& st = sql.get(select_content);
  db::reset_on_exit reset(st);
  st.bind(1, id);
  if (!st.step()) {
    return spool_failure{spool_errc::not_found, "message " + std::string(id) + " is not queued"};
  }
  content_location where;
  where.size = static_cast<std::uint64_t>(st.int64(2));
  if (!st.is_null(3)) where.eight_bit = st.int32(3) != 0;
  if (!st.is_null(0)) {
    where.bytes = st.blob(0);
  } else if (!st.is_null(1)) {
    where.file = st.text(1);
  } else {
    return spool_failure{spool_errc::lost,
                         "message " + std::string(id) + ": its row names no content"};
  }
  return where;
}

spool_result<message_content> open_content(const std::filesystem::path& files_dir,
                                           std::string_view id, content_location where) {
  if (where.file.empty()) {
    // Small enough to be read whole: looking for 8-bit octets costs little.
    const bool eight_bit = where.eight_bit ? *where.eight_bit : has_8bit(where.bytes);
    return message_content(std::move(where.bytes), eight_bit);
  }
  return message_content::open_file(files_dir / where.file, id, where.size, where.eight_bit);
}

std::int64_t insert_message(db::statement_cache& sql, const std::string& id, const envelope& env,
                            std::int64_t received_ms, const new_content& content,
                            std::int64_t after) {
  auto& m = sql.get(insert_message_row);
  db::reset_on_exit reset(m);
  m.bind(1, std::string_view(id));
  m.bind(2, received_ms / 1000);
  m.bind(3, std::string_view(env.sender));
  m.bind(4, std::string_view(env.account));
  m.bind(5, static_cast<std::int64_t>(env.params.body));
  m.bind(6, static_cast<std::int64_t>(env.params.smtputf8 ? 1 : 0));
  m.bind(7, static_cast<std::int64_t>(env.params.ret));
  m.bind(8, std::string_view(env.params.envid));
  m.bind(9, static_cast<std::int64_t>(content.size));
  if (content.in_file) {
    m.bind_null(10);
    m.bind(11, std::string_view(id));
  } else {
    // The content has a table of its own: the message row stays small, so
    // scheduling changes and queue scans never touch the content's pages.
    sql.get(insert_content_row).bind_blob(1, content.memory).run();
    m.bind(10, sql.db().last_insert_rowid());
    m.bind_null(11);
  }
  m.bind(12, received_ms);
  m.bind(13, static_cast<std::int64_t>(content.eight_bit ? 1 : 0));
  m.bind(14, after + 1);
  m.run();
  const std::int64_t position = sql.db().last_insert_rowid();
  auto& r = sql.get(insert_recipient_row);
  std::int64_t place = 0;
  for (const auto& rcpt : env.recipients) {
    r.bind(1, std::string_view(id));
    r.bind(2, place++);
    r.bind(3, std::string_view(rcpt.address));
    r.bind(4, encode_notify(rcpt.params.notify));
    r.bind(5, std::string_view(rcpt.params.orcpt));
    r.run();
  }
  return position;
}

removed_message delete_message(db::statement_cache& sql, const std::string& id) {
  removed_message out;
  std::optional<std::int64_t> content_id;
  auto& del = sql.get(delete_message_row);
  {
    db::reset_on_exit reset(del);
    del.bind(1, std::string_view(id));
    if (del.step()) {
      out.found = true;
      out.file = del.text(0);
      content_id = del.optional_int64(1);
      while (del.step()) {
      }
    }
  }
  if (content_id) sql.get(delete_content_row).bind(1, *content_id).run();
  return out;
}

bool names_own_file(db::statement_cache& sql, std::string_view id) {
  auto& st = sql.get(select_own_file);
  db::reset_on_exit reset(st);
  st.bind(1, id);
  return st.step();
}

std::vector<std::string> content_files(db::statement_cache& sql) {
  std::vector<std::string> out;
  auto& st = sql.get(select_content_files);
  db::reset_on_exit reset(st);
  while (st.step()) out.push_back(st.text(0));
  return out;
}

}  // namespace oauth_relay::relay::rows
