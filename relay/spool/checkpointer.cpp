// At most one checkpoint is queued or running at a time; WAL growth reported
// meanwhile makes it run once more instead of queueing another.
#include "relay/spool/checkpointer.hpp"

#include <sqlite3.h>

#include <condition_variable>
#include <mutex>
#include <optional>

#include <boost/asio/post.hpp>

#include "config/log.hpp"

namespace oauth_relay::relay {
namespace {

// A checkpoint is wanted once the WAL holds this many pages (~32 MB). Each
// one syncs queue.db, and the writer's next sync waits behind it on the
// disk: at 1,000 pages (~4 MB) a long drain checkpointed several times a
// second, and fresh mail's 250 p99 was 12-14 ms against 8 ms at 8,000, with
// the drain 15-20% slower (bench/backlog, 100,000 queued, same run).
constexpr int checkpoint_pages = 8000;
// PASSIVE copies what it can without blocking the writer. Under sustained
// load the WAL cannot restart while frames keep arriving; past ~80 MB a
// RESTART checkpoint waits for the writer once so the file stops growing.
constexpr int restart_pages = 20000;

}  // namespace

struct wal_checkpointer::state {
  explicit state(db::connection c) : db(std::move(c)) {}

  // On the blocking pool.
  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      if (stopping) {
        busy = false;
        return;
      }
      const int mode =
          pages >= restart_pages ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE;
      again = false;
      running = true;
      lock.unlock();
      const int rc = sqlite3_wal_checkpoint_v2(db->handle(), nullptr, mode, nullptr, nullptr);
      if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
        log::warning("spool_checkpoint_failed").kv("error", sqlite3_errstr(rc));
      }
      lock.lock();
      running = false;
      done.notify_all();
      if (!again) {
        busy = false;
        return;
      }
    }
  }

  std::optional<db::connection> db;  // closed by the destructor, not by a late job
  std::mutex mutex;
  std::condition_variable done;
  int pages = 0;         // the WAL's size at the last report
  bool busy = false;     // a checkpoint is queued or running
  bool again = false;    // the WAL grew while it ran
  bool running = false;  // inside sqlite3_wal_checkpoint_v2
  bool stopping = false;
};

wal_checkpointer::wal_checkpointer(const std::filesystem::path& file,
                                   boost::asio::any_io_executor blocking)
    : blocking_(std::move(blocking)) {
  db::connection db(file, SQLITE_OPEN_READWRITE);
  // A connection only knows the database is in WAL mode once it has read
  // it; until then a checkpoint through it silently does nothing.
  db.exec("PRAGMA journal_mode=WAL; SELECT count(*) FROM sqlite_master;");
  state_ = std::make_shared<state>(std::move(db));
}

wal_checkpointer::~wal_checkpointer() {
  std::unique_lock lock(state_->mutex);
  state_->stopping = true;
  state_->done.wait(lock, [this] { return !state_->running; });
  // Closed now, so nothing touches the database once the spool is gone; a
  // job still queued on the pool sees `stopping` and leaves.
  state_->db.reset();
}

void wal_checkpointer::watch(db::connection& writer) {
  sqlite3_wal_hook(
      writer.handle(),
      [](void* self, sqlite3*, const char*, int pages) {
        static_cast<wal_checkpointer*>(self)->wal_grew(pages);
        return SQLITE_OK;
      },
      this);
}

void wal_checkpointer::wal_grew(int pages) {
  if (pages < checkpoint_pages) return;
  {
    std::lock_guard lock(state_->mutex);
    state_->pages = pages;
    if (state_->busy) {
      state_->again = true;
      return;
    }
    state_->busy = true;
  }
  boost::asio::post(blocking_, [s = state_] { s->run(); });
}

}  // namespace oauth_relay::relay
