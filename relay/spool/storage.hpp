// Message storage: drafts written as mail arrives, and the commit that makes
// one durable (the session's 250). Implements message_store for sessions.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>

#include <boost/asio/awaitable.hpp>

#include "db/sqlite.hpp"
#include "relay/spool/draft.hpp"
#include "relay/spool/message_store.hpp"
#include "relay/spool/writer.hpp"

namespace oauth_relay::relay {

class message_storage final : public message_store {
 public:
  message_storage(spool_writer& writer, std::filesystem::path files_dir);

  // A spool_draft: the content goes to spool/<id> once it is large.
  std::unique_ptr<message_draft> begin() override;
  // Completes only after the transaction is synced; concurrent commits share
  // one sync. A draft that is not this storage's answers `failed`.
  boost::asio::awaitable<spool_result<void>> commit(std::unique_ptr<message_draft> draft,
                                                    envelope env) override;

  // Messages taken from SMTP clients since start (bounces not included).
  std::uint64_t messages_received() const { return received_.load(); }

  // A content file without a row is a draft that never got its 250: removes
  // those at start, before the writer runs. Throws db::error.
  static void remove_orphan_files(db::connection& db, const std::filesystem::path& files_dir);

 private:
  spool_writer& writer_;
  std::filesystem::path files_dir_;
  std::atomic<std::uint64_t> received_{0};
};

}  // namespace oauth_relay::relay
