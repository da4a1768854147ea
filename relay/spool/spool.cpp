// SQLite-backed spool with group commit: sessions queue their commits, one
// writer thread stores everything pending in one transaction and one sync,
// then wakes each session with its result.
#include "relay/spool/spool.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <system_error>

#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include "config/log.hpp"
#include "config/private_file.hpp"
#include "relay/message_id.hpp"

namespace oauth_relay::relay {
namespace {

constexpr const char* schema = R"sql(
CREATE TABLE IF NOT EXISTS messages(
  id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL,
  sender TEXT NOT NULL,
  account TEXT NOT NULL,
  body_type INTEGER NOT NULL,
  smtputf8 INTEGER NOT NULL,
  dsn_ret INTEGER NOT NULL,
  envid TEXT NOT NULL,
  size INTEGER NOT NULL,
  content_id INTEGER,
  content_file TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS recipients(
  message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  address TEXT NOT NULL,
  notify INTEGER NOT NULL,
  orcpt TEXT NOT NULL,
  status INTEGER NOT NULL DEFAULT 0,
  last_reply TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(message_id, position)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contents(
  id INTEGER PRIMARY KEY,
  data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages(next_attempt_ms);
CREATE INDEX IF NOT EXISTS messages_account_due ON messages(account COLLATE NOCASE, next_attempt_ms);
PRAGMA user_version = 2;
)sql";

// Version 1 kept the content inside the message row, so every change of a
// message's schedule rewrote its content and every scan of the queue read it.
constexpr const char* migrate_from_1 = R"sql(
BEGIN IMMEDIATE;
CREATE TABLE contents(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
ALTER TABLE messages ADD COLUMN content_id INTEGER;
INSERT INTO contents(id, data) SELECT rowid, content FROM messages WHERE content IS NOT NULL;
UPDATE messages SET content_id = rowid WHERE content IS NOT NULL;
ALTER TABLE messages DROP COLUMN content;
PRAGMA user_version = 2;
COMMIT;
)sql";
constexpr int schema_version = 2;

// NOTIFY flags as stored: bit 0 specified, 1 never, 2 success, 3 failure, 4 delay.
int encode_notify(const smtp::dsn_notify& n) {
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

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A prepared statement that resets itself after each use.
class statement {
 public:
  statement(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      throw spool_error(std::string("cannot prepare statement: ") + sqlite3_errmsg(db));
    }
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;
  sqlite3_stmt* get() { return stmt_; }
  void bind(int i, std::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
  }
  void bind(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind_blob(int i, std::string_view bytes) {
    sqlite3_bind_blob64(stmt_, i, bytes.data(), bytes.size(), SQLITE_STATIC);
  }
  void bind_null(int i) { sqlite3_bind_null(stmt_, i); }
  int step_once() {
    int rc = sqlite3_step(stmt_);
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    return rc;
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

std::string column_text(sqlite3_stmt* s, int i) {
  const auto* p = sqlite3_column_text(s, i);
  return p ? std::string(reinterpret_cast<const char*>(p),
                         static_cast<std::size_t>(sqlite3_column_bytes(s, i)))
           : std::string();
}

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error ? error : sqlite3_errmsg(db);
    sqlite3_free(error);
    throw spool_error(message);
  }
}

sqlite3* open_database(const std::filesystem::path& file, int flags) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(file.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    throw spool_error(file.string() + ": cannot open: " + message);
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  return db;
}

void fsync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

store_result failure_from(int sqlite_code, std::string detail) {
  const int primary = sqlite_code & 0xff;
  return {primary == SQLITE_FULL ? store_status::no_space : store_status::failed,
          std::move(detail)};
}

store_result failure_from_errno(int error) {
  return {error == ENOSPC || error == EDQUOT ? store_status::no_space : store_status::failed,
          std::strerror(error)};
}

// Returns 0 or the errno of the failed write.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

}  // namespace

// ---------------------------------------------------------------- drafts

spool_draft::spool_draft(std::string id, std::filesystem::path dir)
    : id_(std::move(id)), dir_(std::move(dir)) {}

spool_draft::~spool_draft() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink((dir_ / id_).c_str());
  }
}

void spool_draft::spill() {
  fd_ = ::open((dir_ / id_).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    write_errno_ = errno;
    return;
  }
}

void spool_draft::append(std::string_view bytes) {
  size_ += bytes.size();
  if (write_errno_ != 0) return;
  if (fd_ < 0 && memory_.size() + bytes.size() <= spool_memory_limit) {
    memory_.append(bytes);
    return;
  }
  if (fd_ < 0) {
    spill();
    if (fd_ < 0) return;
    write_errno_ = write_all(fd_, memory_);
    std::string().swap(memory_);
    if (write_errno_ != 0) return;
  }
  write_errno_ = write_all(fd_, bytes);
}

// ---------------------------------------------------------------- reader

spool_reader::spool_reader(const std::filesystem::path& state_dir) : dir_(state_dir / "spool") {
  db_ = open_database(state_dir / "queue.db", SQLITE_OPEN_READONLY);
}

spool_reader::~spool_reader() {
  sqlite3_close(db_);
}

std::vector<queued_message> spool_reader::messages() {
  std::vector<queued_message> out;
  statement m(db_,
              "SELECT id, received_at, sender, account, body_type, smtputf8, dsn_ret, envid, size, "
              "attempts, next_attempt_ms, last_error FROM messages ORDER BY received_at, id");
  statement r(db_,
              "SELECT address, notify, orcpt, status, last_reply FROM recipients "
              "WHERE message_id = ? ORDER BY position");
  while (sqlite3_step(m.get()) == SQLITE_ROW) {
    queued_message q;
    auto* s = m.get();
    q.id = column_text(s, 0);
    q.received_at = sqlite3_column_int64(s, 1);
    q.env.sender = column_text(s, 2);
    q.env.account = column_text(s, 3);
    q.env.params.body = static_cast<smtp::body_type>(sqlite3_column_int(s, 4));
    q.env.params.smtputf8 = sqlite3_column_int(s, 5) != 0;
    q.env.params.ret = static_cast<smtp::dsn_ret>(sqlite3_column_int(s, 6));
    q.env.params.envid = column_text(s, 7);
    q.size = static_cast<std::uint64_t>(sqlite3_column_int64(s, 8));
    q.attempts = sqlite3_column_int(s, 9);
    q.next_attempt_ms = sqlite3_column_int64(s, 10);
    q.last_error = column_text(s, 11);
    r.bind(1, std::string_view(q.id));
    while (sqlite3_step(r.get()) == SQLITE_ROW) {
      queued_recipient qr;
      qr.rcpt.address = column_text(r.get(), 0);
      qr.rcpt.params.notify = decode_notify(sqlite3_column_int(r.get(), 1));
      qr.rcpt.params.orcpt = column_text(r.get(), 2);
      qr.status = static_cast<recipient_status>(sqlite3_column_int(r.get(), 3));
      qr.last_reply = column_text(r.get(), 4);
      q.env.recipients.push_back(qr.rcpt);
      q.recipients.push_back(std::move(qr));
    }
    sqlite3_reset(r.get());
    out.push_back(std::move(q));
  }
  return out;
}

std::optional<std::string> spool_reader::content(const std::string& id) {
  statement s(db_,
              "SELECT c.data, m.content_file FROM messages m LEFT JOIN contents c "
              "ON c.id = m.content_id WHERE m.id = ?");
  s.bind(1, std::string_view(id));
  if (sqlite3_step(s.get()) != SQLITE_ROW) return std::nullopt;
  if (sqlite3_column_type(s.get(), 0) == SQLITE_BLOB) {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(s.get(), 0));
    return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s.get(), 0)));
  }
  const std::string file = column_text(s.get(), 1);
  int fd = ::open((dir_ / file).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw spool_error("message " + id + ": content file missing: " + std::strerror(errno));
  std::string out;
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// ---------------------------------------------------------------- spool

// ---------------------------------------------------------------- writer tasks

struct spool::statements {
  explicit statements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE"),
        commit(db, "COMMIT"),
        rollback(db, "ROLLBACK"),
        insert_message(db,
                       "INSERT INTO messages(id, received_at, sender, account, body_type, "
                       "smtputf8, dsn_ret, envid, size, content_id, content_file, next_attempt_ms) "
                       "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_recipient(db,
                         "INSERT INTO recipients(message_id, position, address, notify, orcpt) "
                         "VALUES(?,?,?,?,?)"),
        due(db,
            "SELECT id, received_at, sender, account, body_type, smtputf8, dsn_ret, envid, size, "
            "attempts, next_attempt_ms, last_error FROM messages WHERE next_attempt_ms <= ? "
            "ORDER BY next_attempt_ms, received_at LIMIT ?"),
        recipients_of(db,
                      "SELECT address, notify, orcpt, status, last_reply FROM recipients "
                      "WHERE message_id = ? ORDER BY position"),
        next_due(db, "SELECT min(next_attempt_ms) FROM messages"),
        content(db,
                "SELECT c.data, m.content_file FROM messages m LEFT JOIN contents c "
                "ON c.id = m.content_id WHERE m.id = ?"),
        insert_content(db, "INSERT INTO contents(data) VALUES(?)"),
        delete_content(db, "DELETE FROM contents WHERE id = ?"),
        update_recipient(db,
                         "UPDATE recipients SET status = ?, last_reply = ? "
                         "WHERE message_id = ? AND position = ?"),
        update_message(db,
                       "UPDATE messages SET attempts = attempts + ?, next_attempt_ms = ?, "
                       "last_error = ? WHERE id = ?"),
        delete_message(db, "DELETE FROM messages WHERE id = ? RETURNING content_file, content_id"),
        postpone(db,
                 "UPDATE messages SET next_attempt_ms = ?1, last_error = ?3 "
                 "WHERE account = ?2 COLLATE NOCASE AND next_attempt_ms <= ?4"),
        reschedule(db,
                   "UPDATE messages SET next_attempt_ms = ?1 "
                   "WHERE (?2 = '' OR account = ?2 COLLATE NOCASE) AND next_attempt_ms > ?1") {}
  statement begin, commit, rollback, insert_message, insert_recipient, due, recipients_of, next_due,
      content, insert_content, delete_content, update_recipient, update_message, delete_message,
      postpone, reschedule;
};

// One unit of work for the writer thread. Tasks of a batch share one
// transaction; prepare() runs before it (syncing content files), apply()
// inside it, committed() after a successful COMMIT, finish() posts the result.
struct spool::task {
  virtual ~task() = default;
  virtual bool prepare(spool&) { return true; }
  virtual int apply(spool&) = 0;  // SQLITE_DONE on success
  virtual void committed(spool&) {}
  virtual void fail(int rc, std::string detail) = 0;
  virtual void finish() = 0;
  bool stores_message = false;
  bool failed = false;
};

namespace {

queued_message read_message_row(sqlite3_stmt* s) {
  queued_message q;
  q.id = column_text(s, 0);
  q.received_at = sqlite3_column_int64(s, 1);
  q.env.sender = column_text(s, 2);
  q.env.account = column_text(s, 3);
  q.env.params.body = static_cast<smtp::body_type>(sqlite3_column_int(s, 4));
  q.env.params.smtputf8 = sqlite3_column_int(s, 5) != 0;
  q.env.params.ret = static_cast<smtp::dsn_ret>(sqlite3_column_int(s, 6));
  q.env.params.envid = column_text(s, 7);
  q.size = static_cast<std::uint64_t>(sqlite3_column_int64(s, 8));
  q.attempts = sqlite3_column_int(s, 9);
  q.next_attempt_ms = sqlite3_column_int64(s, 10);
  q.last_error = column_text(s, 11);
  return q;
}

void read_recipients(sqlite3_stmt* r, queued_message& q) {
  sqlite3_bind_text(r, 1, q.id.data(), static_cast<int>(q.id.size()), SQLITE_STATIC);
  while (sqlite3_step(r) == SQLITE_ROW) {
    queued_recipient qr;
    qr.rcpt.address = column_text(r, 0);
    qr.rcpt.params.notify = decode_notify(sqlite3_column_int(r, 1));
    qr.rcpt.params.orcpt = column_text(r, 2);
    qr.status = static_cast<recipient_status>(sqlite3_column_int(r, 3));
    qr.last_reply = column_text(r, 4);
    q.env.recipients.push_back(qr.rcpt);
    q.recipients.push_back(std::move(qr));
  }
  sqlite3_reset(r);
  sqlite3_clear_bindings(r);
}

std::optional<std::string> read_content_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0) out.reserve(static_cast<std::size_t>(st.st_size));
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Inserts a message row and its recipients with the writer's statements.
int insert_message(spool::statements& st, const std::string& id, const envelope& env,
                   std::int64_t received_ms, std::uint64_t size, std::string_view memory_content,
                   bool in_file) {
  auto& m = st.insert_message;
  m.bind(1, std::string_view(id));
  m.bind(2, static_cast<std::int64_t>(received_ms / 1000));
  m.bind(3, std::string_view(env.sender));
  m.bind(4, std::string_view(env.account));
  m.bind(5, static_cast<std::int64_t>(env.params.body));
  m.bind(6, static_cast<std::int64_t>(env.params.smtputf8 ? 1 : 0));
  m.bind(7, static_cast<std::int64_t>(env.params.ret));
  m.bind(8, std::string_view(env.params.envid));
  m.bind(9, static_cast<std::int64_t>(size));
  int rc = SQLITE_DONE;
  if (in_file) {
    m.bind_null(10);
    m.bind(11, std::string_view(id));
  } else {
    // The content has a table of its own: the message row stays small, so
    // scheduling changes and queue scans never touch the content's pages.
    auto& c = st.insert_content;
    c.bind_blob(1, memory_content);
    rc = c.step_once();
    if (rc != SQLITE_DONE) return rc;
    m.bind(10, static_cast<std::int64_t>(sqlite3_last_insert_rowid(sqlite3_db_handle(c.get()))));
    m.bind_null(11);
  }
  m.bind(12, received_ms);
  rc = m.step_once();
  if (rc != SQLITE_DONE) return rc;
  std::int64_t position = 0;
  for (const auto& r : env.recipients) {
    auto& s = st.insert_recipient;
    s.bind(1, std::string_view(id));
    s.bind(2, position++);
    s.bind(3, std::string_view(r.address));
    s.bind(4, static_cast<std::int64_t>(encode_notify(r.params.notify)));
    s.bind(5, std::string_view(r.params.orcpt));
    rc = s.step_once();
    if (rc != SQLITE_DONE) return rc;
  }
  return SQLITE_DONE;
}

struct insert_task final : spool::task {
  std::unique_ptr<spool_draft> draft;
  envelope env;
  std::int64_t received_ms = 0;
  std::unique_ptr<spool_completion<store_result>> done;
  store_result result{store_status::stored, {}};

  bool prepare(spool& s) override;
  int apply(spool& s) override;
  void committed(spool&) override;
  void fail(int rc, std::string detail) override { result = failure_from(rc, std::move(detail)); }
  void finish() override {
    draft.reset();  // free the content (or remove an unstored file) before the session resumes
    done->post(std::move(result));
  }
};

}  // namespace

// Friends of spool_draft need namespace-level access: these reach its members.
struct spool_draft_access {
  static int& fd(spool_draft& d) { return d.fd_; }
  static int write_errno(const spool_draft& d) { return d.write_errno_; }
  static const std::string& memory(const spool_draft& d) { return d.memory_; }
};

namespace {

bool insert_task::prepare(spool& s) {
  if (int e = spool_draft_access::write_errno(*draft); e != 0) {
    result = failure_from_errno(e);
    return false;
  }
  int fd = spool_draft_access::fd(*draft);
  if (fd >= 0) {
    // Content files are synced before any row names them.
    if (::fdatasync(fd) != 0) {
      result = failure_from_errno(errno);
      return false;
    }
    s.note_file_written();
  }
  return true;
}

int insert_task::apply(spool& s) {
  return insert_message(s.sql(), draft->id(), env, received_ms, draft->size(),
                        spool_draft_access::memory(*draft), spool_draft_access::fd(*draft) >= 0);
}

void insert_task::committed(spool& s) {
  s.note_received();
  int& fd = spool_draft_access::fd(*draft);
  if (fd >= 0) {
    ::close(fd);
    fd = -1;  // the file now belongs to the row
  }
}

struct due_task final : spool::task {
  std::int64_t now_ms = 0;
  std::size_t limit = 0;
  message_id_set busy;
  std::unique_ptr<spool_completion<std::vector<queued_message>>> done;
  std::vector<queued_message> result;

  int apply(spool& s) override {
    result.clear();
    auto& st = s.sql();
    st.due.bind(1, now_ms);
    // Fetch enough to fill `limit` after leaving out the busy ones.
    st.due.bind(2, static_cast<std::int64_t>(limit + busy.size()));
    int rc;
    while ((rc = sqlite3_step(st.due.get())) == SQLITE_ROW) {
      // Claimed rows are skipped by id alone: under a backlog they are most
      // of what the query steps over.
      const auto* id = reinterpret_cast<const char*>(sqlite3_column_text(st.due.get(), 0));
      const auto id_size = static_cast<std::size_t>(sqlite3_column_bytes(st.due.get(), 0));
      if (busy.find(std::string_view(id ? id : "", id ? id_size : 0)) != busy.end()) continue;
      result.push_back(read_message_row(st.due.get()));
      if (result.size() >= limit) break;
    }
    sqlite3_reset(st.due.get());
    sqlite3_clear_bindings(st.due.get());
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return rc;  // ROW: stopped at the limit
    for (auto& q : result) read_recipients(st.recipients_of.get(), q);
    return SQLITE_DONE;
  }
  void fail(int, std::string) override { result.clear(); }
  void finish() override { done->post(std::move(result)); }
};

struct next_due_task final : spool::task {
  std::unique_ptr<spool_completion<std::optional<std::int64_t>>> done;
  std::optional<std::int64_t> result;

  int apply(spool& s) override {
    auto* stmt = s.sql().next_due.get();
    int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW && sqlite3_column_type(stmt, 0) != SQLITE_NULL) {
      result = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_reset(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_DONE : rc;
  }
  void fail(int, std::string) override { result.reset(); }
  void finish() override { done->post(result); }
};

// Deletes a message row, its recipients and its content row; `removed_file`
// gets the name of a content file to unlink once the transaction commits.
int delete_message_row(spool::statements& st, const std::string& id, std::string& removed_file,
                       bool* found = nullptr) {
  auto& del = st.delete_message;
  del.bind(1, std::string_view(id));
  std::optional<std::int64_t> content_id;
  int rc = sqlite3_step(del.get());
  if (found) *found = rc == SQLITE_ROW;
  if (rc == SQLITE_ROW) {
    removed_file = column_text(del.get(), 0);
    if (sqlite3_column_type(del.get(), 1) != SQLITE_NULL)
      content_id = sqlite3_column_int64(del.get(), 1);
    rc = sqlite3_step(del.get());
  }
  sqlite3_reset(del.get());
  sqlite3_clear_bindings(del.get());
  if (rc != SQLITE_DONE || !content_id) return rc;
  st.delete_content.bind(1, *content_id);
  return st.delete_content.step_once();
}

struct content_task final : spool::task {
  std::string id;
  std::unique_ptr<spool_completion<std::optional<std::string>>> done;
  std::optional<std::string> result;
  std::string file;

  int apply(spool& s) override {
    auto& stmt = s.sql().content;
    stmt.bind(1, std::string_view(id));
    int rc = sqlite3_step(stmt.get());
    if (rc == SQLITE_ROW) {
      if (sqlite3_column_type(stmt.get(), 0) == SQLITE_BLOB) {
        const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt.get(), 0));
        result.emplace(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt.get(), 0)));
      } else {
        file = column_text(stmt.get(), 1);
      }
    }
    sqlite3_reset(stmt.get());
    sqlite3_clear_bindings(stmt.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return rc;
    // Large contents are read outside SQLite, after the (read-only) transaction.
    return SQLITE_DONE;
  }
  void committed(spool& s) override {
    if (!file.empty()) result = read_content_file(s.files_dir() / file);
  }
  void fail(int, std::string) override { result.reset(); }
  void finish() override { done->post(std::move(result)); }
};

struct record_task final : spool::task {
  delivery_record record;
  std::optional<generated_message> bounce;
  std::string bounce_id;
  std::unique_ptr<spool_completion<store_result>> done;
  store_result result{store_status::stored, {}};
  std::string removed_file;

  int apply(spool& s) override {
    auto& st = s.sql();
    for (const auto& r : record.recipients) {
      st.update_recipient.bind(1, static_cast<std::int64_t>(r.status));
      st.update_recipient.bind(2, std::string_view(r.reply));
      st.update_recipient.bind(3, std::string_view(record.id));
      st.update_recipient.bind(4, static_cast<std::int64_t>(r.position));
      int rc = st.update_recipient.step_once();
      if (rc != SQLITE_DONE) return rc;
    }
    if (record.finished) {
      int rc = delete_message_row(st, record.id, removed_file);
      if (rc != SQLITE_DONE) return rc;
    } else {
      auto& up = st.update_message;
      up.bind(1, static_cast<std::int64_t>(record.count_attempt ? 1 : 0));
      up.bind(2, record.next_attempt_ms);
      up.bind(3, std::string_view(record.last_error));
      up.bind(4, std::string_view(record.id));
      int rc = up.step_once();
      if (rc != SQLITE_DONE) return rc;
    }
    if (bounce) {
      if (bounce_id.empty()) bounce_id = new_message_id();
      return insert_message(st, bounce_id, bounce->env, now_ms(), bounce->content.size(),
                            bounce->content, false);
    }
    return SQLITE_DONE;
  }
  void committed(spool& s) override {
    if (!removed_file.empty()) ::unlink((s.files_dir() / removed_file).c_str());
  }
  void fail(int rc, std::string detail) override { result = failure_from(rc, std::move(detail)); }
  void finish() override { done->post(std::move(result)); }
};

struct postpone_task final : spool::task {
  std::string account;
  std::int64_t until_ms = 0;
  std::string reason;
  std::unique_ptr<spool_completion<std::size_t>> done;
  std::size_t result = 0;

  int apply(spool& s) override {
    auto& st = s.sql().postpone;
    st.bind(1, until_ms);
    st.bind(2, std::string_view(account));
    st.bind(3, std::string_view(reason));
    // Only what is due now: mail parked earlier is not rewritten again.
    st.bind(4, now_ms());
    int rc = st.step_once();
    result = static_cast<std::size_t>(sqlite3_changes(s.db()));
    return rc;
  }
  void fail(int, std::string) override { result = 0; }
  void finish() override { done->post(result); }
};

struct reschedule_task final : spool::task {
  std::string account;
  std::int64_t when_ms = 0;
  std::unique_ptr<spool_completion<std::size_t>> done;
  std::size_t result = 0;

  int apply(spool& s) override {
    auto& st = s.sql().reschedule;
    st.bind(1, when_ms);
    st.bind(2, std::string_view(account));
    int rc = st.step_once();
    result = static_cast<std::size_t>(sqlite3_changes(s.db()));
    return rc;
  }
  void fail(int, std::string) override { result = 0; }
  void finish() override { done->post(result); }
};

// ---------------------------------------------------------------- administration
// Tasks for the health socket. They prepare their statements per use: they
// run on an administrator's request, never on the delivery path.

// A statement that cannot be prepared fails the task, never the writer thread.
template <typename Body>
int guarded(Body body) {
  try {
    return body();
  } catch (const spool_error&) {
    return SQLITE_ERROR;
  }
}

struct summary_task final : spool::task {
  std::unique_ptr<spool_completion<queue_summary>> done;
  queue_summary result;

  int apply(spool& s) override {
    return guarded([&] { return run(s); });
  }
  int run(spool& s) {
    statement st(s.db(),
                 "SELECT count(*), count(CASE WHEN attempts > 0 THEN 1 END), min(received_at) "
                 "FROM messages");
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_ROW) return rc;
    result.depth = static_cast<std::size_t>(sqlite3_column_int64(st.get(), 0));
    result.deferred = static_cast<std::size_t>(sqlite3_column_int64(st.get(), 1));
    if (sqlite3_column_type(st.get(), 2) != SQLITE_NULL)
      result.oldest_received_at = sqlite3_column_int64(st.get(), 2);
    return SQLITE_DONE;
  }
  void fail(int, std::string) override { result = {}; }
  void finish() override { done->post(result); }
};

struct list_task final : spool::task {
  std::unique_ptr<spool_completion<std::vector<queued_message>>> done;
  std::vector<queued_message> result;

  int apply(spool& s) override {
    return guarded([&] { return run(s); });
  }
  int run(spool& s) {
    result.clear();
    statement st(s.db(),
                 "SELECT id, received_at, sender, account, body_type, smtputf8, dsn_ret, envid, "
                 "size, attempts, next_attempt_ms, last_error FROM messages "
                 "ORDER BY received_at, rowid");
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW)
      result.push_back(read_message_row(st.get()));
    if (rc != SQLITE_DONE) return rc;
    for (auto& q : result) read_recipients(s.sql().recipients_of.get(), q);
    return SQLITE_DONE;
  }
  void fail(int, std::string) override { result.clear(); }
  void finish() override { done->post(std::move(result)); }
};

struct retry_task final : spool::task {
  std::vector<std::string> ids;
  bool all = false;
  std::int64_t when_ms = 0;
  std::unique_ptr<spool_completion<queue_change>> done;
  queue_change result;

  int apply(spool& s) override {
    return guarded([&] { return run(s); });
  }
  int run(spool& s) {
    result = {};
    if (all) {
      statement st(s.db(), "UPDATE messages SET next_attempt_ms = min(next_attempt_ms, ?1)");
      st.bind(1, when_ms);
      int rc = st.step_once();
      result.changed = static_cast<std::size_t>(sqlite3_changes(s.db()));
      return rc;
    }
    statement st(s.db(),
                 "UPDATE messages SET next_attempt_ms = min(next_attempt_ms, ?1) WHERE id = ?2");
    for (const auto& id : ids) {
      st.bind(1, when_ms);
      st.bind(2, std::string_view(id));
      int rc = st.step_once();
      if (rc != SQLITE_DONE) return rc;
      if (sqlite3_changes(s.db()) > 0) {
        ++result.changed;
      } else {
        result.unknown.push_back(id);
      }
    }
    return SQLITE_DONE;
  }
  void fail(int, std::string detail) override {
    result = {};
    result.error = std::move(detail);
  }
  void finish() override { done->post(std::move(result)); }
};

struct delete_task final : spool::task {
  std::vector<std::string> ids;
  std::unique_ptr<spool_completion<queue_change>> done;
  queue_change result;
  std::vector<std::string> files;

  int apply(spool& s) override {
    result = {};
    files.clear();
    for (const auto& id : ids) {
      bool found = false;
      std::string file;
      int rc = delete_message_row(s.sql(), id, file, &found);
      if (rc != SQLITE_DONE) return rc;
      if (!file.empty()) files.push_back(std::move(file));
      if (found) {
        ++result.changed;
      } else {
        result.unknown.push_back(id);
      }
    }
    return SQLITE_DONE;
  }
  // Content files go only once no row names them; a crash in between leaves
  // orphans that the next start removes.
  void committed(spool& s) override {
    for (const auto& f : files) ::unlink((s.files_dir() / f).c_str());
  }
  void fail(int, std::string detail) override {
    result = {};
    result.error = std::move(detail);
  }
  void finish() override { done->post(std::move(result)); }
};

}  // namespace

// ---------------------------------------------------------------- spool

spool::spool(const std::filesystem::path& state_dir, boost::asio::any_io_executor executor)
    : state_dir_(state_dir), files_dir_(state_dir / "spool"), executor_(std::move(executor)) {
  std::error_code ec;
  std::filesystem::create_directories(files_dir_, ec);
  if (ec) throw spool_error(files_dir_.string() + ": cannot create: " + ec.message());
  // Messages are private: only the service user may read the state directory.
  ::chmod(state_dir_.c_str(), 0700);
  ::chmod(files_dir_.c_str(), 0700);
  const auto db_path = state_dir_ / "queue.db";
  const bool existed = std::filesystem::exists(db_path);
  if (auto error = ensure_private_file(db_path); !error.empty()) throw spool_error(error);
  db_ = open_database(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  try {
    // WAL + synchronous=FULL: each COMMIT is synced, readers never block the
    // writer. A small page cache: the writer appends, it rarely re-reads.
    exec(db_,
         "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; "
         "PRAGMA cache_size=-512; PRAGMA journal_size_limit=67108864;");
    if (existed) {
      statement check(db_, "PRAGMA quick_check");
      if (sqlite3_step(check.get()) != SQLITE_ROW || column_text(check.get(), 0) != "ok") {
        throw spool_error(db_path.string() +
                          ": the database is damaged (PRAGMA quick_check failed); "
                          "refusing to start so no queued mail is lost. Move it aside and "
                          "recover it with `sqlite3 queue.db .recover`");
      }
    }
    statement version_query(db_, "PRAGMA user_version");
    const int version = sqlite3_step(version_query.get()) == SQLITE_ROW
                            ? sqlite3_column_int(version_query.get(), 0)
                            : 0;
    if (version > schema_version) {
      throw spool_error(db_path.string() + ": written by a newer oauth-relay (schema version " +
                        std::to_string(version) + "); refusing to start so no queued mail is lost");
    }
    if (version == 1) {
      exec(db_, migrate_from_1);
      log::info("spool_migrated").kv("from", 1).kv("to", schema_version);
    }
    exec(db_, schema);
    statements_ = std::make_unique<statements>(db_);
    checkpoint_db_ = open_database(db_path, SQLITE_OPEN_READWRITE);
    // A connection only knows the database is in WAL mode once it has read
    // it; until then a checkpoint through it silently does nothing.
    exec(checkpoint_db_, "PRAGMA journal_mode=WAL; SELECT count(*) FROM sqlite_master;");
  } catch (const spool_error& e) {
    statements_.reset();
    sqlite3_close(db_);
    sqlite3_close(checkpoint_db_);
    const std::string what = e.what();
    throw spool_error(what.rfind(db_path.string(), 0) == 0 ? what : db_path.string() + ": " + what);
  }
  remove_orphan_files();
  // Replaces SQLite's automatic checkpoint, which would copy the WAL into the
  // database inside a COMMIT and stall every session waiting for it.
  sqlite3_wal_hook(
      db_,
      [](void* self, sqlite3*, const char*, int pages) {
        auto* s = static_cast<spool*>(self);
        if (pages >= 1000) {
          {
            std::lock_guard lock(s->checkpoint_mutex_);
            s->checkpoint_wanted_ = true;
            s->wal_pages_ = pages;
          }
          s->checkpoint_wake_.notify_one();
        }
        return SQLITE_OK;
      },
      this);
  checkpointer_ = std::thread([this] { checkpoint_loop(); });
  writer_ = std::thread([this] { writer_loop(); });
}

spool::~spool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  {
    std::lock_guard lock(checkpoint_mutex_);
    checkpoint_stopping_ = true;
  }
  checkpoint_wake_.notify_one();
  if (checkpointer_.joinable()) checkpointer_.join();
  statements_.reset();
  sqlite3_close(checkpoint_db_);
  sqlite3_close(db_);
}

std::unique_ptr<spool_draft> spool::begin() {
  return std::unique_ptr<spool_draft>(new spool_draft(new_message_id(), files_dir_));
}

std::size_t spool::messages_stored() const {
  std::lock_guard lock(mutex_);
  return stored_;
}

void spool::on_stored(std::function<void()> callback) {
  on_stored_ = std::move(callback);
}

void spool::remove_orphan_files() {
  // A content file without a row is a draft that never got its 250: remove it.
  std::vector<std::string> referenced;
  statement s(db_, "SELECT content_file FROM messages WHERE content_file IS NOT NULL");
  while (sqlite3_step(s.get()) == SQLITE_ROW) referenced.push_back(column_text(s.get(), 0));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(files_dir_, ec)) {
    const auto name = entry.path().filename().string();
    if (std::find(referenced.begin(), referenced.end(), name) == referenced.end()) {
      std::filesystem::remove(entry.path(), ec);
      log::info("spool_orphan_removed").kv("file", name);
    }
  }
}

void spool::enqueue(std::unique_ptr<task> t) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(t));
  }
  wake_.notify_one();
}

void spool::enqueue_insert(std::unique_ptr<spool_draft> draft, envelope env,
                           std::unique_ptr<spool_completion<store_result>> done) {
  auto t = std::make_unique<insert_task>();
  t->draft = std::move(draft);
  t->env = std::move(env);
  t->received_ms = now_ms();
  t->done = std::move(done);
  t->stores_message = true;
  enqueue(std::move(t));
}

void spool::enqueue_due(std::int64_t now, std::size_t limit, message_id_set busy,
                        std::unique_ptr<spool_completion<std::vector<queued_message>>> done) {
  auto t = std::make_unique<due_task>();
  t->now_ms = now;
  t->limit = limit;
  t->busy = std::move(busy);
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_next_due(std::unique_ptr<spool_completion<std::optional<std::int64_t>>> done) {
  auto t = std::make_unique<next_due_task>();
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_content(std::string id,
                            std::unique_ptr<spool_completion<std::optional<std::string>>> done) {
  auto t = std::make_unique<content_task>();
  t->id = std::move(id);
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_postpone(std::string account, std::int64_t until_ms, std::string reason,
                             std::unique_ptr<spool_completion<std::size_t>> done) {
  auto t = std::make_unique<postpone_task>();
  t->account = std::move(account);
  t->until_ms = until_ms;
  t->reason = std::move(reason);
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_reschedule(std::string account, std::int64_t when_ms,
                               std::unique_ptr<spool_completion<std::size_t>> done) {
  auto t = std::make_unique<reschedule_task>();
  t->account = std::move(account);
  t->when_ms = when_ms;
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_record(delivery_record record, std::optional<generated_message> bounce,
                           std::unique_ptr<spool_completion<store_result>> done) {
  auto t = std::make_unique<record_task>();
  t->record = std::move(record);
  t->stores_message = bounce.has_value();
  t->bounce = std::move(bounce);
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_summary(std::unique_ptr<spool_completion<queue_summary>> done) {
  auto t = std::make_unique<summary_task>();
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_list(std::unique_ptr<spool_completion<std::vector<queued_message>>> done) {
  auto t = std::make_unique<list_task>();
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_retry(std::vector<std::string> ids, bool all, std::int64_t when_ms,
                          std::unique_ptr<spool_completion<queue_change>> done) {
  auto t = std::make_unique<retry_task>();
  t->ids = std::move(ids);
  t->all = all;
  t->when_ms = when_ms;
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::enqueue_delete(std::vector<std::string> ids,
                           std::unique_ptr<spool_completion<queue_change>> done) {
  auto t = std::make_unique<delete_task>();
  t->ids = std::move(ids);
  t->done = std::move(done);
  enqueue(std::move(t));
}

void spool::writer_loop() {
  // After a burst, hand SQLite's cache and freed heap back to the system so
  // an idle relay stays small.
  constexpr auto idle_release_after = std::chrono::seconds(1);
  bool released = true;
  std::vector<std::unique_ptr<task>> batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    if (released) {
      wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    } else if (!wake_.wait_for(lock, idle_release_after,
                               [this] { return stopping_ || !pending_.empty(); })) {
      lock.unlock();
      sqlite3_db_release_memory(db_);
      ::malloc_trim(0);
      released = true;
      lock.lock();
      continue;
    }
    if (pending_.empty()) break;  // stopping and nothing left
    batch.clear();
    while (!pending_.empty()) {
      batch.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    lock.unlock();
    run_batch(batch);
    std::size_t stored = 0;
    for (auto& t : batch) {
      if (t->stores_message && !t->failed) ++stored;
    }
    {
      // Counted before anyone is told, so a session that got its 250 sees it.
      std::lock_guard count_lock(mutex_);
      stored_ += stored;
    }
    for (auto& t : batch) t->finish();
    batch.clear();
    if (stored > 0 && on_stored_) boost::asio::post(executor_, on_stored_);
    released = false;
    lock.lock();
  }
}

int spool::run_transaction(std::vector<std::unique_ptr<task>>& batch, std::size_t first,
                           std::size_t last) {
  auto& st = *statements_;
  int rc = st.begin.step_once();
  if (rc != SQLITE_DONE) return rc;
  for (std::size_t i = first; i < last; ++i) {
    if (batch[i]->failed) continue;
    rc = batch[i]->apply(*this);
    if (rc != SQLITE_DONE) {
      st.rollback.step_once();
      return rc;
    }
  }
  rc = st.commit.step_once();
  if (rc != SQLITE_DONE) st.rollback.step_once();
  return rc;
}

void spool::run_batch(std::vector<std::unique_ptr<task>>& batch) {
  directory_dirty_ = false;
  for (auto& t : batch) {
    if (!t->prepare(*this)) t->failed = true;
  }
  // New content files' names must be durable before rows point at them.
  if (directory_dirty_) fsync_directory(files_dir_);

  int rc = run_transaction(batch, 0, batch.size());
  if (rc == SQLITE_DONE) {
    for (auto& t : batch) {
      if (!t->failed) t->committed(*this);
    }
    return;
  }
  if (batch.size() > 1) {
    // One bad task must not fail the others: run each on its own.
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i]->failed) continue;
      int one = run_transaction(batch, i, i + 1);
      if (one == SQLITE_DONE) {
        batch[i]->committed(*this);
      } else {
        batch[i]->fail(one, sqlite3_errstr(one));
        batch[i]->failed = true;
      }
    }
    return;
  }
  for (auto& t : batch) {
    if (t->failed) continue;
    t->fail(rc, sqlite3_errstr(rc));
    t->failed = true;
  }
}

void spool::checkpoint_loop() {
  // PASSIVE copies what it can without blocking the writer. Under sustained
  // load the WAL cannot restart while frames keep arriving; past ~80 MB a
  // RESTART checkpoint waits for the writer once so the file stops growing.
  constexpr int restart_pages = 20000;
  std::unique_lock lock(checkpoint_mutex_);
  for (;;) {
    checkpoint_wake_.wait(lock, [this] { return checkpoint_stopping_ || checkpoint_wanted_; });
    if (checkpoint_stopping_) break;
    checkpoint_wanted_ = false;
    const int pages = wal_pages_;
    lock.unlock();
    const int mode = pages >= restart_pages ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
    int rc = sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, mode, nullptr, nullptr);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
      log::warning("spool_checkpoint_failed").kv("error", sqlite3_errstr(rc));
    }
    lock.lock();
  }
}

}  // namespace oauth_relay::relay
