// A commit is the writer's one job with all three steps: the content file is
// synced before the transaction, the rows are inserted inside it, and the
// file is handed to the row once it is durable.
#include "relay/spool/storage.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>
#include <unordered_set>
#include <vector>

#include <boost/asio/use_awaitable.hpp>

#include "common/clock.hpp"
#include "config/log.hpp"
#include "relay/message_id.hpp"
#include "relay/spool/rows.hpp"

namespace oauth_relay::relay {
namespace {

spool_failure failure_from_errno(int error) {
  return {error == ENOSPC || error == EDQUOT ? spool_errc::no_space : spool_errc::failed,
          std::strerror(error)};
}

struct commit_job {
  std::unique_ptr<spool_draft> draft;  // null: not a draft of this storage
  envelope env;
  std::int64_t received_ms = 0;
  std::atomic<std::uint64_t>* received = nullptr;

  spool_result<void> before(writer_context& ctx) {
    if (!draft) return spool_failure{spool_errc::failed, "not a draft of this spool"};
    if (int error = draft->write_error(); error != 0) return failure_from_errno(error);
    if (draft->in_file()) {
      // Content files are synced before any row names them.
      if (int error = draft->sync_file(); error != 0) return failure_from_errno(error);
      ctx.file_written();
    }
    return {};
  }
  spool_result<void> apply(writer_context& ctx) {
    ctx.message_stored(rows::insert_message(ctx.statements(), draft->id(), env, received_ms,
                                            {.size = draft->size(),
                                             .memory = draft->memory(),
                                             .in_file = draft->in_file(),
                                             .eight_bit = draft->eight_bit()},
                                            ctx.last_position()));
    return {};
  }
  void committed(writer_context&, spool_result<void>&) {
    ++*received;
    draft->hand_over_file();
  }
};

}  // namespace

message_storage::message_storage(spool_writer& writer, std::filesystem::path files_dir)
    : writer_(writer), files_dir_(std::move(files_dir)) {}

std::unique_ptr<message_draft> message_storage::begin() {
  return std::make_unique<spool_draft>(new_message_id(), files_dir_);
}

boost::asio::awaitable<spool_result<void>> message_storage::commit(
    std::unique_ptr<message_draft> draft, envelope env) {
  std::unique_ptr<spool_draft> ours(dynamic_cast<spool_draft*>(draft.get()));
  if (ours) draft.release();
  return writer_.run<void>(commit_job{std::move(ours), std::move(env), now_ms(), &received_},
                           boost::asio::use_awaitable);
}

void message_storage::remove_orphan_files(db::connection& db,
                                          const std::filesystem::path& files_dir) {
  // Before the daemon listens, so never a full scan of the queue on the way:
  // a file is named by its message's id, one primary key lookup each; only
  // names that lookup does not place (a draft a crash left, or a row from a
  // version that named files otherwise) are checked against every row's.
  std::error_code ec;
  std::vector<std::filesystem::path> unplaced;
  db::statement_cache statements(db);
  for (const auto& entry : std::filesystem::directory_iterator(files_dir, ec)) {
    if (!rows::names_own_file(statements, entry.path().filename().string()))
      unplaced.push_back(entry.path());
  }
  if (unplaced.empty()) return;
  const auto listed = rows::content_files(statements);
  const std::unordered_set<std::string> referenced(listed.begin(), listed.end());
  for (const auto& path : unplaced) {
    const auto name = path.filename().string();
    if (referenced.count(name) != 0) continue;
    std::filesystem::remove(path, ec);
    log::info("spool_orphan_removed").kv("file", name);
  }
}

}  // namespace oauth_relay::relay
