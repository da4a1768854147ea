// SQLite-backed spool with group commit: sessions queue their commits, one
// writer thread stores everything pending in one transaction and one sync,
// then wakes each session with its result.
#include "relay/spool.hpp"

#include <fcntl.h>
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
  content BLOB,
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
CREATE INDEX IF NOT EXISTS messages_due ON messages(next_attempt_ms);
PRAGMA user_version = 1;
)sql";

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
      qr.status = sqlite3_column_int(r.get(), 3);
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
  statement s(db_, "SELECT content, content_file FROM messages WHERE id = ?");
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

struct spool::job {
  std::unique_ptr<spool_draft> draft;
  envelope env;
  std::int64_t received_ms = 0;
  std::unique_ptr<completion> done;
  store_result result;
};

struct spool::statements {
  explicit statements(sqlite3* db)
      : begin(db, "BEGIN IMMEDIATE"),
        commit(db, "COMMIT"),
        rollback(db, "ROLLBACK"),
        insert_message(db,
                       "INSERT INTO messages(id, received_at, sender, account, body_type, "
                       "smtputf8, dsn_ret, envid, size, content, content_file, next_attempt_ms) "
                       "VALUES(?,?,?,?,?,?,?,?,?,?,?,?)"),
        insert_recipient(db,
                         "INSERT INTO recipients(message_id, position, address, notify, orcpt) "
                         "VALUES(?,?,?,?,?)") {}
  statement begin, commit, rollback, insert_message, insert_recipient;
};

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
  {
    // SQLite creates the database with the process umask: make it 0600 first.
    int fd = ::open(db_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw spool_error(db_path.string() + ": cannot open: " + std::strerror(errno));
    ::fchmod(fd, 0600);
    ::close(fd);
  }
  db_ = open_database(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  try {
    // WAL + synchronous=FULL: each COMMIT is synced, readers never block the writer.
    exec(db_, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;");
    if (existed) {
      statement check(db_, "PRAGMA quick_check");
      if (sqlite3_step(check.get()) != SQLITE_ROW || column_text(check.get(), 0) != "ok") {
        throw spool_error(db_path.string() +
                          ": the database is damaged (PRAGMA quick_check failed); "
                          "refusing to start so no queued mail is lost. Move it aside and "
                          "recover it with `sqlite3 queue.db .recover`");
      }
    }
    exec(db_, schema);
    statements_ = std::make_unique<statements>(db_);
  } catch (const spool_error& e) {
    statements_.reset();
    sqlite3_close(db_);
    const std::string what = e.what();
    throw spool_error(what.rfind(db_path.string(), 0) == 0 ? what : db_path.string() + ": " + what);
  }
  remove_orphan_files();
  writer_ = std::thread([this] { writer_loop(); });
}

spool::~spool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (writer_.joinable()) writer_.join();
  statements_.reset();
  sqlite3_close(db_);
}

std::unique_ptr<spool_draft> spool::begin() {
  return std::unique_ptr<spool_draft>(new spool_draft(new_message_id(), files_dir_));
}

std::size_t spool::messages_stored() const {
  std::lock_guard lock(mutex_);
  return stored_;
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

void spool::enqueue(std::unique_ptr<spool_draft> draft, envelope env,
                    std::unique_ptr<completion> done) {
  auto j = std::make_unique<job>();
  j->draft = std::move(draft);
  j->env = std::move(env);
  j->received_ms = now_ms();
  j->done = std::move(done);
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(j));
  }
  wake_.notify_one();
}

void spool::writer_loop() {
  std::vector<std::unique_ptr<job>> batch;
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !pending_.empty(); });
    if (pending_.empty()) break;  // stopping and nothing left
    batch.clear();
    while (!pending_.empty()) {
      batch.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    lock.unlock();
    write_batch(batch);
    std::size_t stored = 0;
    for (auto& j : batch) {
      if (j->result.status == store_status::stored) ++stored;
      auto done = std::move(j->done);
      auto result = std::move(j->result);
      j.reset();  // free the content before the session resumes
      done->post(std::move(result));
    }
    lock.lock();
    stored_ += stored;
  }
}

void spool::write_batch(std::vector<std::unique_ptr<job>>& batch) {
  // Content files first: synced before any row names them.
  bool any_file = false;
  for (auto& j : batch) {
    auto& d = *j->draft;
    if (d.write_errno_ != 0) {
      j->result = failure_from_errno(d.write_errno_);
      continue;
    }
    if (d.fd_ >= 0) {
      if (::fdatasync(d.fd_) != 0) {
        j->result = failure_from_errno(errno);
        continue;
      }
      any_file = true;
    }
    j->result = {store_status::stored, {}};
  }
  if (any_file) fsync_directory(files_dir_);

  auto& st = *statements_;
  auto run = [&](std::size_t first, std::size_t last) -> int {
    int rc = st.begin.step_once();
    if (rc != SQLITE_DONE) return rc;
    for (std::size_t i = first; i < last; ++i) {
      auto& j = *batch[i];
      if (j.result.status != store_status::stored) continue;
      rc = insert(j);
      if (rc != SQLITE_DONE) {
        st.rollback.step_once();
        return rc;
      }
    }
    rc = st.commit.step_once();
    if (rc != SQLITE_DONE) st.rollback.step_once();
    return rc;
  };

  int rc = run(0, batch.size());
  if (rc == SQLITE_DONE) {
    for (auto& j : batch) {
      if (j->result.status == store_status::stored && j->draft->fd_ >= 0) {
        ::close(j->draft->fd_);
        j->draft->fd_ = -1;  // now owned by the row
      }
    }
    return;
  }
  if (batch.size() > 1) {
    // One bad message must not fail the others: store each on its own.
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i]->result.status != store_status::stored) continue;
      int one = run(i, i + 1);
      if (one == SQLITE_DONE) {
        if (batch[i]->draft->fd_ >= 0) {
          ::close(batch[i]->draft->fd_);
          batch[i]->draft->fd_ = -1;
        }
      } else {
        batch[i]->result = failure_from(one, sqlite3_errstr(one));
      }
    }
    return;
  }
  for (auto& j : batch) {
    if (j->result.status == store_status::stored) j->result = failure_from(rc, sqlite3_errstr(rc));
  }
}

int spool::insert(job& j) {
  auto& st = *statements_;
  auto& m = st.insert_message;
  const auto& env = j.env;
  const auto& d = *j.draft;
  m.bind(1, std::string_view(d.id_));
  m.bind(2, static_cast<std::int64_t>(j.received_ms / 1000));
  m.bind(3, std::string_view(env.sender));
  m.bind(4, std::string_view(env.account));
  m.bind(5, static_cast<std::int64_t>(env.params.body));
  m.bind(6, static_cast<std::int64_t>(env.params.smtputf8 ? 1 : 0));
  m.bind(7, static_cast<std::int64_t>(env.params.ret));
  m.bind(8, std::string_view(env.params.envid));
  m.bind(9, static_cast<std::int64_t>(d.size_));
  if (d.fd_ >= 0) {
    m.bind_null(10);
    m.bind(11, std::string_view(d.id_));
  } else {
    m.bind_blob(10, d.memory_);
    m.bind_null(11);
  }
  m.bind(12, j.received_ms);
  int rc = m.step_once();
  if (rc != SQLITE_DONE) return rc;
  std::int64_t position = 0;
  for (const auto& r : env.recipients) {
    auto& s = st.insert_recipient;
    s.bind(1, std::string_view(d.id_));
    s.bind(2, position++);
    s.bind(3, std::string_view(r.address));
    s.bind(4, static_cast<std::int64_t>(encode_notify(r.params.notify)));
    s.bind(5, std::string_view(r.params.orcpt));
    rc = s.step_once();
    if (rc != SQLITE_DONE) return rc;
  }
  return SQLITE_DONE;
}

}  // namespace oauth_relay::relay
