// Read-only view of a spool for the administrator's tools and tests; safe
// while the daemon runs (SQLite WAL readers never block the writer).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "db/sqlite.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

class spool_reader {
 public:
  // Opens state_dir/queue.db read-only; never creates or migrates it.
  // Throws spool_error.
  explicit spool_reader(const std::filesystem::path& state_dir);
  spool_reader(const spool_reader&) = delete;
  spool_reader& operator=(const spool_reader&) = delete;

  // Every queued message with its recipients, oldest first.
  spool_result<std::vector<queued_message>> messages();
  // A message's content: not_found when it is not queued, failed when it
  // cannot be read.
  spool_result<std::string> content(const std::string& id);

 private:
  std::filesystem::path files_dir_;
  db::connection db_;
  db::statement_cache statements_{db_};
};

}  // namespace oauth_relay::relay
