// Opening the spool: the schema (db/schema), orphaned draft files removed,
// the checkpointer attached, then the writer thread started with the
// connection. That thread is the only one the spool owns.
#include "relay/spool/spool.hpp"

#include <sys/stat.h>

#include <system_error>

#include <boost/asio/post.hpp>

#include "db/schema.hpp"

namespace oauth_relay::relay {

struct spool::opened {
  db::connection db;
  std::unique_ptr<wal_checkpointer> checkpointer;
  bool check_deferred = false;
};

spool::spool(const std::filesystem::path& state_dir, boost::asio::any_io_executor executor,
             boost::asio::any_io_executor blocking)
    : spool(open(state_dir, state_dir / "spool", blocking), state_dir, std::move(executor),
            blocking) {}

spool::spool(opened o, const std::filesystem::path& state_dir,
             boost::asio::any_io_executor executor, boost::asio::any_io_executor blocking)
    : state_dir_(state_dir),
      executor_(executor),
      blocking_(std::move(blocking)),
      check_deferred_(o.check_deferred),
      checkpointer_(std::move(o.checkpointer)),
      writer_(std::move(o.db), state_dir / "spool", executor, [this](std::size_t n) { stored(n); }),
      storage_(writer_, state_dir / "spool"),
      queue_(writer_),
      admin_(writer_) {}

spool::~spool() = default;

void spool::on_stored(std::function<void()> callback) {
  std::lock_guard lock(on_stored_mutex_);
  on_stored_ = std::move(callback);
}

void spool::check_later(std::function<void(std::string)> done) {
  boost::asio::post(blocking_, [dir = state_dir_, done = std::move(done), executor = executor_] {
    std::string problem;
    try {
      auto db = db::open_queue_read_only(dir);
      db::check_integrity(db);
    } catch (const db::error& e) {
      problem = e.what();
    }
    boost::asio::post(executor, [done, problem] { done(problem); });
  });
}

void spool::stored(std::size_t) {
  std::lock_guard lock(on_stored_mutex_);
  if (on_stored_) boost::asio::post(executor_, on_stored_);
}

spool::opened spool::open(const std::filesystem::path& state_dir,
                          const std::filesystem::path& files_dir,
                          boost::asio::any_io_executor blocking) {
  std::error_code ec;
  std::filesystem::create_directories(files_dir, ec);
  if (ec) throw spool_error(files_dir.string() + ": cannot create: " + ec.message());
  // Messages are private: only the service user may read the state directory.
  ::chmod(state_dir.c_str(), 0700);
  ::chmod(files_dir.c_str(), 0700);
  try {
    std::error_code size_error;
    const auto size = std::filesystem::file_size(state_dir / "queue.db", size_error);
    const bool check_now = size_error || size <= check_at_open_limit;
    auto db = db::open_queue(state_dir, {.check_integrity = check_now});
    // A page cache of 4 MB, so the index pages of a long queue stay in
    // memory while a drain deletes from five b-trees per message (the
    // daemon's peak while draining 200,000 stays under 64 MB, bench/backlog).
    // A WAL file that does not stay large after a burst.
    db.exec("PRAGMA cache_size=-4096; PRAGMA journal_size_limit=67108864;");
    message_storage::remove_orphan_files(db, files_dir);
    auto checkpointer = std::make_unique<wal_checkpointer>(db.path(), std::move(blocking));
    checkpointer->watch(db);
    return {std::move(db), std::move(checkpointer), !check_now};
  } catch (const db::error& e) {
    throw spool_error(e.what());
  }
}

}  // namespace oauth_relay::relay
