// The reader runs the writer's own row code (rows.cpp) on a read-only
// connection of its own; database failures become spool failures.
#include "relay/spool/reader.hpp"

#include "db/schema.hpp"
#include "relay/spool/rows.hpp"

namespace oauth_relay::relay {
namespace {

db::connection open(const std::filesystem::path& state_dir) {
  try {
    return db::open_queue_read_only(state_dir);
  } catch (const db::error& e) {
    throw spool_error(e.what());
  }
}

}  // namespace

spool_reader::spool_reader(const std::filesystem::path& state_dir)
    : files_dir_(state_dir / "spool"), db_(open(state_dir)) {}

spool_result<std::vector<queued_message>> spool_reader::messages() {
  try {
    return rows::all(statements_);
  } catch (const db::error& e) {
    return spool_failure{spool_errc::failed, e.what()};
  }
}

spool_result<std::string> spool_reader::content(const std::string& id) {
  try {
    auto where = rows::find_content(statements_, id);
    if (!where) return where.error();
    auto content = rows::open_content(files_dir_, id, std::move(*where));
    if (!content) return content.error();
    return content->read_prefix(content->size());
  } catch (const db::error& e) {
    return spool_failure{spool_errc::failed, e.what()};
  }
}

}  // namespace oauth_relay::relay
