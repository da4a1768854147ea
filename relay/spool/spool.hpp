// The spool: the only owner of message state. Sessions hand it a draft (the
// content as it arrives) and an envelope; it answers once the message is
// durably on disk. Everything else refers to messages by id.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include "relay/envelope.hpp"
#include "relay/spool/records.hpp"

struct sqlite3;

namespace oauth_relay::relay {

// A content larger than this goes to a file in the spool directory while it
// arrives, so a message of max_message_size never sits whole in memory.
inline constexpr std::size_t spool_memory_limit = 256 * 1024;

enum class store_status { stored, no_space, failed };

struct store_result {
  store_status status = store_status::failed;
  std::string detail;  // why it failed, for the log
};

// A message being received. Not thread-safe: one session writes it.
class spool_draft {
 public:
  spool_draft(const spool_draft&) = delete;
  spool_draft& operator=(const spool_draft&) = delete;
  ~spool_draft();  // a draft never committed leaves nothing behind

  const std::string& id() const { return id_; }
  std::uint64_t size() const { return size_; }
  // Never throws: a write failure is kept and reported by the commit.
  void append(std::string_view bytes);

 private:
  friend class spool;
  friend struct spool_draft_access;
  spool_draft(std::string id, std::filesystem::path dir);
  void spill();

  std::string id_;
  std::filesystem::path dir_;
  std::string memory_;
  int fd_ = -1;  // set once the content went to a file
  std::uint64_t size_ = 0;
  int write_errno_ = 0;
};

// Read-only view of a spool, for the administrator's tools and tests; safe
// while the daemon runs (SQLite WAL readers never block the writer).
class spool_reader {
 public:
  explicit spool_reader(const std::filesystem::path& state_dir);
  ~spool_reader();
  spool_reader(const spool_reader&) = delete;
  spool_reader& operator=(const spool_reader&) = delete;

  std::vector<queued_message> messages();
  std::optional<std::string> content(const std::string& id);

 private:
  std::filesystem::path dir_;
  sqlite3* db_ = nullptr;
};

// Completions of spool operations, type-erased and run on the handler's own
// executor. (Boost 1.81's any_completion_handler recurses without end with
// awaitable handlers, so this small version is used instead.)
template <typename Result>
struct spool_completion {
  virtual ~spool_completion() = default;
  virtual void post(Result result) = 0;
};

template <typename Result, typename Handler>
struct spool_completion_impl final : spool_completion<Result> {
  spool_completion_impl(Handler h, const boost::asio::any_io_executor& fallback)
      : handler(std::move(h)),
        // Tracked work keeps the event loop running while the operation is pending.
        work(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                 boost::asio::execution::outstanding_work.tracked)) {}
  void post(Result result) override {
    auto w = std::move(work);
    boost::asio::post(w, [h = std::move(handler), r = std::move(result)]() mutable {
      std::move(h)(std::move(r));
    });
  }
  Handler handler;
  decltype(boost::asio::prefer(
      boost::asio::get_associated_executor(std::declval<Handler&>(),
                                           std::declval<const boost::asio::any_io_executor&>()),
      boost::asio::execution::outstanding_work.tracked)) work;
};

class spool {
 public:
  // Opens or creates state_dir (0700) with queue.db and spool/ inside;
  // completions are delivered on `executor`. Throws spool_error.
  spool(const std::filesystem::path& state_dir, boost::asio::any_io_executor executor);
  ~spool();  // stores what is pending, then stops the writer
  spool(const spool&) = delete;
  spool& operator=(const spool&) = delete;

  std::unique_ptr<spool_draft> begin();

  // Durably stores the draft with its envelope. Completes with `stored` only
  // after the transaction is synced; concurrent commits share one sync.
  template <typename CompletionToken>
  auto async_commit(std::unique_ptr<spool_draft> draft, envelope env, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(store_result)>(
        [this](auto handler, std::unique_ptr<spool_draft> d, envelope e) {
          enqueue_insert(std::move(d), std::move(e),
                         make_completion<store_result>(std::move(handler)));
        },
        token, std::move(draft), std::move(env));
  }

  // Messages whose next attempt is due at `now_ms`, oldest first, at most
  // `limit`, leaving out `busy` ones (already being delivered).
  template <typename CompletionToken>
  auto async_due(std::int64_t now_ms, std::size_t limit, message_id_set busy,
                 CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::vector<queued_message>)>(
        [this, now_ms, limit](auto handler, message_id_set b) {
          enqueue_due(now_ms, limit, std::move(b),
                      make_completion<std::vector<queued_message>>(std::move(handler)));
        },
        token, std::move(busy));
  }

  // The earliest next attempt of any queued message (unix ms), if any.
  template <typename CompletionToken>
  auto async_next_due(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::optional<std::int64_t>)>(
        [this](auto handler) {
          enqueue_next_due(make_completion<std::optional<std::int64_t>>(std::move(handler)));
        },
        token);
  }

  // A message's content (the Received header and the data, CRLF lines).
  template <typename CompletionToken>
  auto async_content(std::string id, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::optional<std::string>)>(
        [this](auto handler, std::string i) {
          enqueue_content(std::move(i),
                          make_completion<std::optional<std::string>>(std::move(handler)));
        },
        token, std::move(id));
  }

  // Records a delivery attempt and, atomically with it, stores a bounce.
  template <typename CompletionToken>
  auto async_record(delivery_record record, std::optional<generated_message> bounce,
                    CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(store_result)>(
        [this](auto handler, delivery_record r, std::optional<generated_message> b) {
          enqueue_record(std::move(r), std::move(b),
                         make_completion<store_result>(std::move(handler)));
        },
        token, std::move(record), std::move(bounce));
  }

  // Makes the messages of `account` (all messages when empty) due at `when_ms`;
  // completes with how many changed.
  template <typename CompletionToken>
  auto async_reschedule(std::string account, std::int64_t when_ms, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::size_t)>(
        [this, when_ms](auto handler, std::string a) {
          enqueue_reschedule(std::move(a), when_ms,
                             make_completion<std::size_t>(std::move(handler)));
        },
        token, std::move(account));
  }

  // Puts off the due messages of `account` until `until_ms` with `reason` as
  // their last error, in one statement (an account that cannot send at all).
  template <typename CompletionToken>
  auto async_postpone(std::string account, std::int64_t until_ms, std::string reason,
                      CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::size_t)>(
        [this, until_ms](auto handler, std::string a, std::string r) {
          enqueue_postpone(std::move(a), until_ms, std::move(r),
                           make_completion<std::size_t>(std::move(handler)));
        },
        token, std::move(account), std::move(reason));
  }

  // Depth, deferred count and oldest arrival, in one aggregate query.
  template <typename CompletionToken>
  auto async_summary(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(queue_summary)>(
        [this](auto handler) {
          enqueue_summary(make_completion<queue_summary>(std::move(handler)));
        },
        token);
  }

  // Every queued message with its recipients, oldest first (the queue listing).
  template <typename CompletionToken>
  auto async_list(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(std::vector<queued_message>)>(
        [this](auto handler) {
          enqueue_list(make_completion<std::vector<queued_message>>(std::move(handler)));
        },
        token);
  }

  // Makes the messages `ids` (every message when `all`) due at `when_ms` at
  // the latest; `changed` counts the queued ones, `unknown` lists the rest.
  template <typename CompletionToken>
  auto async_retry(std::vector<std::string> ids, bool all, std::int64_t when_ms,
                   CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(queue_change)>(
        [this, all, when_ms](auto handler, std::vector<std::string> i) {
          enqueue_retry(std::move(i), all, when_ms,
                        make_completion<queue_change>(std::move(handler)));
        },
        token, std::move(ids));
  }

  // Removes the messages `ids`: rows and recipients in one transaction, then
  // their content files. The caller makes sure none is being delivered.
  template <typename CompletionToken>
  auto async_delete(std::vector<std::string> ids, CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(queue_change)>(
        [this](auto handler, std::vector<std::string> i) {
          enqueue_delete(std::move(i), make_completion<queue_change>(std::move(handler)));
        },
        token, std::move(ids));
  }

  // Messages taken from SMTP clients since start (bounces not included).
  std::uint64_t messages_received() const { return received_.load(); }

  // Called on the executor after a commit stored new messages, so delivery
  // starts at once instead of on a polling interval.
  void on_stored(std::function<void()> callback);

  std::size_t messages_stored() const;

  struct task;  // one unit of work for the writer thread (spool.cpp)

 private:
  template <typename Result, typename Handler>
  std::unique_ptr<spool_completion<Result>> make_completion(Handler handler) {
    return std::make_unique<spool_completion_impl<Result, Handler>>(std::move(handler), executor_);
  }
  void enqueue(std::unique_ptr<task> t);
  void enqueue_insert(std::unique_ptr<spool_draft> draft, envelope env,
                      std::unique_ptr<spool_completion<store_result>> done);
  void enqueue_postpone(std::string account, std::int64_t until_ms, std::string reason,
                        std::unique_ptr<spool_completion<std::size_t>> done);
  void enqueue_due(std::int64_t now_ms, std::size_t limit, message_id_set busy,
                   std::unique_ptr<spool_completion<std::vector<queued_message>>> done);
  void enqueue_next_due(std::unique_ptr<spool_completion<std::optional<std::int64_t>>> done);
  void enqueue_content(std::string id,
                       std::unique_ptr<spool_completion<std::optional<std::string>>> done);
  void enqueue_reschedule(std::string account, std::int64_t when_ms,
                          std::unique_ptr<spool_completion<std::size_t>> done);
  void enqueue_record(delivery_record record, std::optional<generated_message> bounce,
                      std::unique_ptr<spool_completion<store_result>> done);
  void enqueue_summary(std::unique_ptr<spool_completion<queue_summary>> done);
  void enqueue_list(std::unique_ptr<spool_completion<std::vector<queued_message>>> done);
  void enqueue_retry(std::vector<std::string> ids, bool all, std::int64_t when_ms,
                     std::unique_ptr<spool_completion<queue_change>> done);
  void enqueue_delete(std::vector<std::string> ids,
                      std::unique_ptr<spool_completion<queue_change>> done);
  void writer_loop();
  void run_batch(std::vector<std::unique_ptr<task>>& batch);
  int run_transaction(std::vector<std::unique_ptr<task>>& batch, std::size_t first,
                      std::size_t last);
  void checkpoint_loop();
  void remove_orphan_files();

 public:
  // For tasks (spool.cpp): the writer's connection and statements.
  struct statements;
  sqlite3* db() { return db_; }
  statements& sql() { return *statements_; }
  const std::filesystem::path& files_dir() const { return files_dir_; }
  void note_file_written() { directory_dirty_ = true; }
  void note_received() { ++received_; }

 private:
  std::filesystem::path state_dir_;
  std::filesystem::path files_dir_;
  boost::asio::any_io_executor executor_;
  sqlite3* db_ = nullptr;
  std::unique_ptr<statements> statements_;
  bool directory_dirty_ = false;  // writer thread only
  std::function<void()> on_stored_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<task>> pending_;
  bool stopping_ = false;
  std::size_t stored_ = 0;
  std::atomic<std::uint64_t> received_{0};
  std::thread writer_;

  // WAL checkpoints run on their own connection and thread, off the commit path.
  sqlite3* checkpoint_db_ = nullptr;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_wake_;
  bool checkpoint_wanted_ = false;
  bool checkpoint_stopping_ = false;
  int wal_pages_ = 0;
  std::thread checkpointer_;
};

}  // namespace oauth_relay::relay
