// Group commit: sessions queue their work, the writer thread applies
// everything pending in one transaction and one sync, then answers each.
// One failing job must not fail the others: a failed batch runs again with
// one transaction per job.
#include "relay/spool/writer.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace oauth_relay::relay {
namespace {

// The writer's own statements.
constexpr const char* begin_sql = "BEGIN IMMEDIATE";
constexpr const char* commit_sql = "COMMIT";
constexpr const char* rollback_sql = "ROLLBACK";

// 0, or the errno of the open or the fsync that failed.
int fsync_directory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int error = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return error;
}

spool_failure failure_from(const db::error& e) {
  return {e.primary_code() == SQLITE_FULL ? spool_errc::no_space : spool_errc::failed, e.what()};
}

}  // namespace

spool_writer::spool_writer(db::connection db, std::filesystem::path files_dir,
                           boost::asio::any_io_executor executor,
                           std::function<void(std::size_t)> on_stored)
    : ctx_(std::move(db), std::move(files_dir)),
      executor_(std::move(executor)),
      on_stored_(std::move(on_stored)) {
  thread_ = std::thread([this] { writer_loop(); });
}

spool_writer::~spool_writer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void spool_writer::enqueue(std::unique_ptr<task> t) {
  {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(t));
  }
  wake_.notify_one();
}

void spool_writer::writer_loop() {
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
      sqlite3_db_release_memory(ctx_.db().handle());
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
    ctx_.stored_ = 0;
    run_batch(batch);
    const std::size_t stored = ctx_.stored_;
    if (stored > 0) {
      // Counted before anyone is told, so a session that got its 250 sees it.
      stored_ += stored;
      if (on_stored_) on_stored_(stored);
    }
    for (auto& t : batch) t->finish();
    batch.clear();
    released = false;
    lock.lock();
  }
}

std::optional<spool_failure> spool_writer::run_transaction(
    std::vector<std::unique_ptr<task>>& batch, std::size_t first, std::size_t last) {
  ctx_.to_remove_.clear();
  const std::size_t stored_before = ctx_.stored_;
  bool open = false;
  try {
    ctx_.prepared(begin_sql).run();
    open = true;
    for (std::size_t i = first; i < last; ++i) {
      if (!batch[i]->failed) batch[i]->apply(ctx_);
    }
    ctx_.prepared(commit_sql).run();
  } catch (const db::error& e) {
    if (open) {
      try {
        ctx_.prepared(rollback_sql).run();
      } catch (const db::error&) {
        // SQLite rolled back by itself (a failed COMMIT may); nothing is open.
      }
    }
    ctx_.stored_ = stored_before;
    return failure_from(e);
  } catch (const std::exception& e) {
    // Not SQLite's (memory, a file name): the transaction still goes.
    if (open) sqlite3_exec(ctx_.db().handle(), rollback_sql, nullptr, nullptr, nullptr);
    ctx_.stored_ = stored_before;
    return spool_failure{spool_errc::failed, e.what()};
  }
  for (const auto& file : ctx_.to_remove_) ::unlink((ctx_.files_dir() / file).c_str());
  ctx_.to_remove_.clear();
  return std::nullopt;
}

void spool_writer::run_batch(std::vector<std::unique_ptr<task>>& batch) {
  bool any_file = false;
  std::vector<bool> wrote_file(batch.size(), false);
  std::size_t runnable = 0;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    ctx_.directory_dirty_ = false;
    batch[i]->failed = !batch[i]->before(ctx_);
    wrote_file[i] = ctx_.directory_dirty_;
    any_file = any_file || wrote_file[i];
    if (!batch[i]->failed) ++runnable;
  }
  if (runnable == 0) return;
  // New content files' names must be durable before rows point at them: if
  // the directory cannot be synced, a crash could leave a row naming a file
  // that is not there, so the jobs that wrote one fail (a 4xx, never a 250).
  if (any_file) {
    if (const int error = fsync_directory(ctx_.files_dir()); error != 0) {
      const spool_failure failure{
          error == ENOSPC || error == EDQUOT ? spool_errc::no_space : spool_errc::failed,
          "cannot sync the directory " + ctx_.files_dir().string() + ": " + std::strerror(error)};
      for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!wrote_file[i] || batch[i]->failed) continue;
        batch[i]->fail(failure);
        batch[i]->failed = true;
        --runnable;
      }
      if (runnable == 0) return;
    }
  }

  auto failure = run_transaction(batch, 0, batch.size());
  if (!failure) {
    for (auto& t : batch) {
      if (!t->failed) t->committed(ctx_);
    }
    return;
  }
  if (runnable > 1) {
    // One bad job must not fail the others: run each on its own.
    for (std::size_t i = 0; i < batch.size(); ++i) {
      if (batch[i]->failed) continue;
      if (auto alone = run_transaction(batch, i, i + 1)) {
        batch[i]->fail(std::move(*alone));
        batch[i]->failed = true;
      } else {
        batch[i]->committed(ctx_);
      }
    }
    return;
  }
  for (auto& t : batch) {
    if (t->failed) continue;
    t->fail(*failure);
    t->failed = true;
  }
}

}  // namespace oauth_relay::relay
