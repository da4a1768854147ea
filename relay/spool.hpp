// The spool: the only owner of message state. Sessions hand it a draft (the
// content as it arrives) and an envelope; it answers once the message is
// durably on disk. Everything else refers to messages by id.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include "relay/envelope.hpp"

struct sqlite3;

namespace oauth_relay::relay {

// A content larger than this goes to a file in the spool directory while it
// arrives, so a message of max_message_size never sits whole in memory.
inline constexpr std::size_t spool_memory_limit = 256 * 1024;

// The spool cannot be opened or used at all (bad state_dir, corrupt database).
class spool_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

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
  spool_draft(std::string id, std::filesystem::path dir);
  void spill();

  std::string id_;
  std::filesystem::path dir_;
  std::string memory_;
  int fd_ = -1;  // set once the content went to a file
  std::uint64_t size_ = 0;
  int write_errno_ = 0;
};

struct queued_recipient {
  recipient rcpt;
  int status = 0;  // 0 pending, 1 delivered, 2 failed
  std::string last_reply;
};

struct queued_message {
  std::string id;
  std::int64_t received_at = 0;  // unix seconds
  envelope env;
  std::uint64_t size = 0;
  int attempts = 0;
  std::int64_t next_attempt_ms = 0;
  std::string last_error;
  std::vector<queued_recipient> recipients;
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
          using handler_type = decltype(handler);
          enqueue(std::move(d), std::move(e),
                  std::make_unique<completion_impl<handler_type>>(std::move(handler), executor_));
        },
        token, std::move(draft), std::move(env));
  }

  std::size_t messages_stored() const;

 private:
  // A commit's completion handler, type-erased, run on its own executor.
  // (Boost 1.81's any_completion_handler recurses without end with awaitable handlers.)
  struct completion {
    virtual ~completion() = default;
    virtual void post(store_result result) = 0;
  };
  template <typename Handler>
  struct completion_impl final : completion {
    completion_impl(Handler h, const boost::asio::any_io_executor& fallback)
        : handler(std::move(h)),
          // Tracked work keeps the event loop running while the commit is pending.
          work(boost::asio::prefer(boost::asio::get_associated_executor(handler, fallback),
                                   boost::asio::execution::outstanding_work.tracked)) {}
    void post(store_result result) override {
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

  struct job;
  void enqueue(std::unique_ptr<spool_draft> draft, envelope env, std::unique_ptr<completion> done);
  void writer_loop();
  void write_batch(std::vector<std::unique_ptr<job>>& batch);
  int insert(job& j);  // an SQLite result code
  void remove_orphan_files();

  std::filesystem::path state_dir_;
  std::filesystem::path files_dir_;
  boost::asio::any_io_executor executor_;
  sqlite3* db_ = nullptr;
  struct statements;
  std::unique_ptr<statements> statements_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<job>> pending_;
  bool stopping_ = false;
  std::size_t stored_ = 0;
  std::thread writer_;
};

}  // namespace oauth_relay::relay
