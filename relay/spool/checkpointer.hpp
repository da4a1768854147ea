// Copies queue.db's write-ahead log back into the database on the blocking
// pool, on a connection of its own, so no commit waits for a checkpoint.
#pragma once

#include <filesystem>
#include <memory>

#include <boost/asio/any_io_executor.hpp>

#include "db/sqlite.hpp"

namespace oauth_relay::relay {

class wal_checkpointer {
 public:
  // Opens its own connection to `file`. Throws db::error.
  wal_checkpointer(const std::filesystem::path& file, boost::asio::any_io_executor blocking);
  // Waits for a checkpoint in progress; one still queued on the pool then
  // does nothing.
  ~wal_checkpointer();
  wal_checkpointer(const wal_checkpointer&) = delete;
  wal_checkpointer& operator=(const wal_checkpointer&) = delete;

  // Replaces SQLite's automatic checkpoint on `writer`, which would copy the
  // WAL into the database inside a COMMIT and stall every session waiting
  // for it. Call before `writer` is used by another thread.
  void watch(db::connection& writer);

 private:
  struct state;
  void wal_grew(int pages);

  std::shared_ptr<state> state_;  // shared with a checkpoint queued on the pool
  boost::asio::any_io_executor blocking_;
};

}  // namespace oauth_relay::relay
