// The spool's writer thread: every read and write of queue.db by the daemon
// runs here, in batches that share one transaction and one sync (group commit).
#pragma once

#include <algorithm>
#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>

#include "common/completion.hpp"
#include "db/sqlite.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

// What work sees of the writer while it runs on the writer thread.
class writer_context {
 public:
  // The writer's statements, prepared once (persistent) on first use; pass
  // SQL constants (see db::statement_cache).
  db::statement& prepared(const char* sql) { return statements_.get(sql); }
  db::statement_cache& statements() { return statements_; }
  db::connection& db() { return db_; }
  const std::filesystem::path& files_dir() const { return files_dir_; }

  // A content file was synced for this batch: its directory is synced once,
  // before the transaction, so the file's name is durable before a row names it.
  void file_written() { directory_dirty_ = true; }
  // `file` in spool/ is named by no row once this transaction commits: it is
  // removed after the commit. (A crash in between leaves an orphan, which
  // the next start removes.) Forgotten when the transaction fails.
  void remove_after_commit(std::string file) { to_remove_.push_back(std::move(file)); }
  // This transaction stores a new message (messages_stored, on_stored) at
  // `position` in arrival order (its rowid).
  void message_stored(std::int64_t position) {
    ++stored_;
    last_position_ = std::max(last_position_, position);
  }
  // The last position given to a new message since the writer started: the
  // next goes past it even when that message has left the queue meanwhile
  // (SQLite would give its rowid again), so while the daemon runs no two
  // messages share a place in arrival order.
  std::int64_t last_position() const { return last_position_; }

 private:
  friend class spool_writer;
  writer_context(db::connection db, std::filesystem::path files_dir)
      : db_(std::move(db)), files_dir_(std::move(files_dir)) {}

  db::connection db_;
  db::statement_cache statements_{db_};
  std::filesystem::path files_dir_;
  bool directory_dirty_ = false;
  std::vector<std::string> to_remove_;
  std::size_t stored_ = 0;
  std::int64_t last_position_ = 0;
};

// Work for the writer. Required: `apply(writer_context&) -> spool_result<T>`,
// run inside the batch's transaction; a db::error it throws rolls the
// transaction back and becomes the answer (no_space for SQLITE_FULL, failed
// otherwise). An error it returns is an answer and rolls nothing back.
// Optional: `before(writer_context&) -> spool_result<void>`, run ahead of the
// transaction (an error is the answer and `apply` is skipped); and
// `committed(writer_context&, spool_result<T>&)`, run with apply's answer
// once the transaction is durable. `apply` may run twice (alone again after
// its batch failed). A plain callable taking writer_context& and returning
// spool_result<T> is a job with only `apply`.
template <typename Job, typename T>
concept writer_job = requires(Job& job, writer_context& ctx) {
  { job.apply(ctx) } -> std::same_as<spool_result<T>>;
};

class spool_writer {
 public:
  // Takes the database's writing connection; completions without an
  // executor of their own run on `executor`. `on_stored(count)` runs on the
  // writer thread after a batch stored count > 0 messages, before any of
  // their completions runs.
  spool_writer(db::connection db, std::filesystem::path files_dir,
               boost::asio::any_io_executor executor,
               std::function<void(std::size_t count)> on_stored = {});
  ~spool_writer();  // runs what is pending, then stops the thread
  spool_writer(const spool_writer&) = delete;
  spool_writer& operator=(const spool_writer&) = delete;

  // Runs `job` on the writer thread and completes with its spool_result<T>.
  template <typename T, typename Job, typename CompletionToken>
  auto run(Job job, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(spool_result<T>)>(
        [this](auto handler, Job j) {
          auto done = make_completion<spool_result<T>>(std::move(handler), executor_);
          if constexpr (writer_job<Job, T>) {
            enqueue(std::make_unique<task_for<T, Job>>(std::move(j), std::move(done)));
          } else {
            static_assert(writer_job<apply_only<Job>, T>, "a job answers spool_result<T>");
            enqueue(std::make_unique<task_for<T, apply_only<Job>>>(apply_only<Job>{std::move(j)},
                                                                   std::move(done)));
          }
        },
        token, std::move(job));
  }

  // Messages stored since start (SMTP and bounces).
  std::size_t messages_stored() const { return stored_.load(); }

 private:
  // One job with its completion, type-erased for the queue.
  struct task {
    virtual ~task() = default;
    virtual bool before(writer_context& ctx) = 0;  // false: answered, not to be applied
    virtual void apply(writer_context& ctx) = 0;   // may throw
    virtual void committed(writer_context& ctx) = 0;
    virtual void fail(spool_failure failure) = 0;
    virtual void finish() = 0;  // destroys the job, then posts the answer
    bool failed = false;
  };

  template <typename Fn>
  struct apply_only {
    Fn fn;
    auto apply(writer_context& ctx) { return fn(ctx); }
  };

  template <typename T, typename Job>
  struct task_for final : task {
    task_for(Job j, completion_ptr<spool_result<T>> d) : job(std::move(j)), done(std::move(d)) {}
    bool before(writer_context& ctx) override {
      if constexpr (requires { job->before(ctx); }) {
        if (auto ready = job->before(ctx); !ready) {
          answer.emplace(boost::system::in_place_error, ready.error());
          return false;
        }
      }
      return true;
    }
    void apply(writer_context& ctx) override { answer.emplace(job->apply(ctx)); }
    void committed(writer_context& ctx) override {
      if constexpr (requires { job->committed(ctx, *answer); }) job->committed(ctx, *answer);
    }
    void fail(spool_failure failure) override {
      answer.emplace(boost::system::in_place_error, std::move(failure));
    }
    void finish() override {
      // The job goes first (a draft's memory or unstored file with it), so
      // the caller resumes with nothing of it left.
      job.reset();
      auto result = std::move(*answer);
      auto d = std::move(done);
      d->post(std::move(result));
    }
    std::optional<Job> job;
    completion_ptr<spool_result<T>> done;
    std::optional<spool_result<T>> answer;
  };

  void enqueue(std::unique_ptr<task> t);
  void writer_loop();
  void run_batch(std::vector<std::unique_ptr<task>>& batch);
  // Applies batch[first, last) in one transaction; nothing when it committed.
  std::optional<spool_failure> run_transaction(std::vector<std::unique_ptr<task>>& batch,
                                               std::size_t first, std::size_t last);

  writer_context ctx_;  // the writer thread's only
  boost::asio::any_io_executor executor_;
  std::function<void(std::size_t)> on_stored_;
  std::atomic<std::size_t> stored_{0};

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<task>> pending_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace oauth_relay::relay
