// The spool: the only owner of message state (queue.db and spool/). It opens
// them, runs the writer thread, and offers three faces: message storage for
// sessions, the scheduling queries for delivery, the administrative queries
// for the health socket. Everything else refers to messages by id.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/any_io_executor.hpp>

#include "relay/spool/administration.hpp"
#include "relay/spool/checkpointer.hpp"
#include "relay/spool/delivery_queue.hpp"
#include "relay/spool/draft.hpp"
#include "relay/spool/message_store.hpp"
#include "relay/spool/reader.hpp"
#include "relay/spool/records.hpp"
#include "relay/spool/scheduling.hpp"
#include "relay/spool/storage.hpp"
#include "relay/spool/writer.hpp"

namespace oauth_relay::relay {

class spool {
 public:
  // Opens or creates state_dir (0700) with queue.db and spool/ inside,
  // refusing a damaged database (when not larger than
  // check_at_open_limit; see check_later) or one of a newer version. Completions run on
  // `executor`; WAL checkpoints run on `blocking` (a thread pool), off the
  // commit path. Throws spool_error.
  spool(const std::filesystem::path& state_dir, boost::asio::any_io_executor executor,
        boost::asio::any_io_executor blocking);
  ~spool();  // stores what is pending, then stops the writer
  spool(const spool&) = delete;
  spool& operator=(const spool&) = delete;

  message_store& store() { return storage_; }
  delivery_queue& queue() { return queue_; }
  admin_queries& admin() { return admin_; }

  // Messages taken from SMTP clients since start (bounces not included).
  std::uint64_t messages_received() const { return storage_.messages_received(); }
  // Messages stored since start, bounces included.
  std::size_t messages_stored() const { return writer_.messages_stored(); }
  // Called on the executor after a batch stored new messages, so delivery
  // starts at once instead of on a polling interval.
  void on_stored(std::function<void()> callback);

  // PRAGMA quick_check reads the whole file, a second or more per few
  // hundred megabytes: a queue.db up to this size is checked before the
  // daemon listens (a damaged one is refused at start); a larger one (a
  // backlog) after, so a restart with a million queued messages listens at
  // once.
  static constexpr std::uintmax_t check_at_open_limit = 64 * 1024 * 1024;
  // Whether queue.db was too large to be checked at open.
  bool check_deferred() const { return check_deferred_; }
  // Runs the deferred check on the blocking executor with a read-only
  // connection of its own (the writer goes on); `done` runs on the executor
  // with an empty string when the database is sound, else why it is not.
  void check_later(std::function<void(std::string problem)> done);

 private:
  struct opened;
  std::filesystem::path state_dir_;
  static opened open(const std::filesystem::path& state_dir, const std::filesystem::path& files_dir,
                     boost::asio::any_io_executor blocking);
  spool(opened o, const std::filesystem::path& state_dir, boost::asio::any_io_executor executor,
        boost::asio::any_io_executor blocking);
  void stored(std::size_t count);  // on the writer thread

  boost::asio::any_io_executor executor_;
  boost::asio::any_io_executor blocking_;
  bool check_deferred_ = false;
  std::mutex on_stored_mutex_;  // set on the event loop, read on the writer thread
  std::function<void()> on_stored_;
  std::unique_ptr<wal_checkpointer> checkpointer_;  // outlives the writer's connection
  spool_writer writer_;
  message_storage storage_;
  scheduling_queries queue_;
  admin_queries admin_;
};

}  // namespace oauth_relay::relay
