// A message being received into the spool: in memory while small, spilled
// to a private file in spool/ once it passes spool_memory_limit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "relay/spool/message_store.hpp"

namespace oauth_relay::relay {

// A content larger than this goes to a file in the spool directory while it
// arrives, so a message of max_message_size never sits whole in memory.
inline constexpr std::size_t spool_memory_limit = 256 * 1024;

// Not thread-safe: one session writes it, then the writer thread stores it.
class spool_draft final : public message_draft {
 public:
  spool_draft(std::string id, std::filesystem::path files_dir);
  ~spool_draft() override;  // a draft whose file no row names removes it
  spool_draft(const spool_draft&) = delete;
  spool_draft& operator=(const spool_draft&) = delete;

  const std::string& id() const override { return id_; }
  std::uint64_t size() const override { return size_; }
  void append(std::string_view bytes) override;

  // For the spool's commit. The errno of the first failed write, or 0.
  int write_error() const { return write_errno_; }
  // Whether some octet appended is above 0x7F (BODY=8BITMIME upstream):
  // noted here, where every octet passes anyway, so delivery need not read
  // the content to find out.
  bool eight_bit() const { return eight_bit_; }
  // Whether the content went to the file spool/<id>.
  bool in_file() const { return fd_ >= 0; }
  // The content while it is in memory.
  std::string_view memory() const { return memory_; }
  // fdatasync of the content file: 0 or the errno.
  int sync_file();
  // The row now names the file: close it and leave it in place.
  void hand_over_file();

 private:
  void spill();

  std::string id_;
  std::filesystem::path files_dir_;
  std::string memory_;
  int fd_ = -1;  // set once the content went to a file
  std::uint64_t size_ = 0;
  int write_errno_ = 0;
  bool eight_bit_ = false;
};

}  // namespace oauth_relay::relay
