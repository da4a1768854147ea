// How messages lie in queue.db: the one place for the message and recipient
// column lists, reading rows back, and inserting and deleting them. Shared by
// the writer's queries and spool_reader. Failures throw db::error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "db/sqlite.hpp"
#include "relay/envelope.hpp"
#include "relay/spool/content.hpp"
#include "relay/spool/records.hpp"

namespace oauth_relay::relay::rows {

// What `request` asks for, with the recipients: the due messages oldest
// first (by due time, then arrival; an index walk, no sort however many are
// due at once), and the due ones of the next arrivals (a seek in the table's
// b-tree, at most fresh + busy rows read).
due_mail due(db::statement_cache& sql, const due_request& request);

// Every message with its recipients, oldest arrival first.
std::vector<queued_message> all(db::statement_cache& sql);

// At most `limit` messages with their recipients, in arrival order (rowid),
// from the one after position `after`; next_after is set when more follow.
// One seek in the table's b-tree, however long the queue.
queue_page page(db::statement_cache& sql, std::int64_t after, std::size_t limit);

// The earliest next attempt of any message, if there is one.
std::optional<std::int64_t> next_due(db::statement_cache& sql);

// Where a message's content is kept: in SQLite (`bytes`), or in the file
// spool/`file` for a large one.
struct content_location {
  std::string bytes;
  std::string file;               // empty when the bytes are in SQLite
  std::uint64_t size = 0;         // the content's size as stored
  std::optional<bool> eight_bit;  // unset on rows stored before it was noted
};
// not_found when no message has the id; lost when its row names no content.
spool_result<content_location> find_content(db::statement_cache& sql, std::string_view id);
// The content `where` names, for reading: the bytes, or the file opened
// (outside any transaction: the row exists, so it is never not_found; see
// message_content::open_file for lost and failed).
spool_result<message_content> open_content(const std::filesystem::path& files_dir,
                                           std::string_view id, content_location where);

// What insert_message() stores as the content: `memory` (the bytes), or the
// file spool/<id> when `in_file`; `eight_bit` says whether it has 8-bit octets.
struct new_content {
  std::uint64_t size = 0;
  std::string_view memory;
  bool in_file = false;
  bool eight_bit = false;
};
// Inserts a message and its recipients; returns its position in arrival
// order (rowid), past `after` and past every queued message.
std::int64_t insert_message(db::statement_cache& sql, const std::string& id, const envelope& env,
                            std::int64_t received_ms, const new_content& content,
                            std::int64_t after);

// Deletes a message, its recipients and its content row. `found` says
// whether it existed; `file` names a content file to remove once committed.
struct removed_message {
  bool found = false;
  std::string file;
};
removed_message delete_message(db::statement_cache& sql, const std::string& id);

// Whether the message `id` is queued with its content in the file named
// `id` (the name insert_message() gives it): one primary key lookup.
bool names_own_file(db::statement_cache& sql, std::string_view id);

// The content files rows name (to tell orphans apart at start): a scan.
std::vector<std::string> content_files(db::statement_cache& sql);

}  // namespace oauth_relay::relay::rows
