// A queued message's content as the spool hands it out: the bytes of a small
// message, or the open file of a large one, read in pieces so that delivering
// a message of max_message_size never holds it whole in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "relay/spool/records.hpp"

namespace oauth_relay::relay {

// The most one read hands out, and so what one upstream write carries
// before dot-stuffing: large enough for few TLS writes, small enough that a
// connection holds little more than this per message.
inline constexpr std::size_t content_chunk = 64 * 1024;

// Whether `bytes` has an octet above 0x7F (RFC 6152: 8BITMIME content).
bool has_8bit(std::string_view bytes);

// Move-only. Reads go from the first byte to the last; rewind() starts
// over. Not thread-safe: one coroutine reads it at a time.
class message_content {
 public:
  message_content() = default;  // empty
  // Content held in memory: a small message read from SQLite, a bounce.
  message_content(std::string bytes, bool eight_bit);
  // The content file `path` of message `id`, stored with `size` bytes:
  // `lost` when it is gone (ENOENT, ENOTDIR) or has another size (it was
  // truncated or replaced behind the relay's back, and will not come back),
  // `failed` when it cannot be opened or read now (EMFILE, EIO: it may work
  // later). `eight_bit` unset (a row stored before the flag was kept): the
  // file is read through once to find out.
  static spool_result<message_content> open_file(const std::filesystem::path& path,
                                                 std::string_view id, std::uint64_t size,
                                                 std::optional<bool> eight_bit);

  ~message_content();
  message_content(message_content&& other) noexcept;
  message_content& operator=(message_content&& other) noexcept;
  message_content(const message_content&) = delete;
  message_content& operator=(const message_content&) = delete;

  std::uint64_t size() const { return size_; }
  // Some octet is above 0x7F: MAIL needs BODY=8BITMIME.
  bool eight_bit() const { return eight_bit_; }
  // The last two octets are CR LF (true for anything the relay stored; the
  // client adds them otherwise, and SIZE counts them).
  bool ends_with_crlf() const { return ends_with_crlf_; }

  // The next piece, at most content_chunk octets; empty at the end. Valid
  // until the next call. `lost` when the file turns out shorter than its
  // stored size, `failed` when a read fails.
  spool_result<std::string_view> next();
  // The next read starts at the first octet again.
  void rewind() { offset_ = 0; }
  // From the first octet, at most `limit` octets (a bounce's copy, the
  // administrator's tools); the next read starts at the first octet again.
  spool_result<std::string> read_prefix(std::uint64_t limit);

 private:
  spool_failure failure(int error) const;

  std::string memory_;  // the content, when it is not in a file
  int fd_ = -1;         // the content file, when it is in one
  std::string id_;      // for error messages
  std::string path_;
  std::uint64_t size_ = 0;
  std::uint64_t offset_ = 0;  // where the next read starts
  bool eight_bit_ = false;
  bool ends_with_crlf_ = false;
  std::string buffer_;  // a file's current piece
};

}  // namespace oauth_relay::relay
