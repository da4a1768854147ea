// Content files are read with pread() in content_chunk pieces. The reads
// run where the content is delivered (the event loop), like the session's
// writes of the same files: each is bounded, and the kernel reads ahead of
// a file read front to back, so they come from the page cache.
#include "relay/spool/content.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

namespace oauth_relay::relay {
namespace {

// Reads `length` octets at `offset`: 0, the errno of the failed read, or -1
// when the file ends first.
int pread_all(int fd, char* into, std::size_t length, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < length) {
    const ssize_t n = ::pread(fd, into + got, length - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return -1;
    got += static_cast<std::size_t>(n);
  }
  return 0;
}

}  // namespace

bool has_8bit(std::string_view bytes) {
  // OR-ing a block at a time lets the compiler vectorise the scan; the
  // answer is still known at the first block with a high bit.
  constexpr std::size_t block = 256;
  for (std::size_t i = 0; i < bytes.size(); i += block) {
    const std::size_t end = std::min(bytes.size(), i + block);
    unsigned char any = 0;
    for (std::size_t j = i; j < end; ++j) any |= static_cast<unsigned char>(bytes[j]);
    if ((any & 0x80) != 0) return true;
  }
  return false;
}

message_content::message_content(std::string bytes, bool eight_bit)
    : memory_(std::move(bytes)), size_(memory_.size()), eight_bit_(eight_bit) {
  ends_with_crlf_ = memory_.ends_with("\r\n");
}

message_content::~message_content() {
  if (fd_ >= 0) ::close(fd_);
}

message_content::message_content(message_content&& other) noexcept
    : memory_(std::move(other.memory_)),
      fd_(std::exchange(other.fd_, -1)),
      id_(std::move(other.id_)),
      path_(std::move(other.path_)),
      size_(other.size_),
      offset_(other.offset_),
      eight_bit_(other.eight_bit_),
      ends_with_crlf_(other.ends_with_crlf_),
      buffer_(std::move(other.buffer_)) {}

message_content& message_content::operator=(message_content&& other) noexcept {
  if (this == &other) return *this;
  if (fd_ >= 0) ::close(fd_);
  memory_ = std::move(other.memory_);
  fd_ = std::exchange(other.fd_, -1);
  id_ = std::move(other.id_);
  path_ = std::move(other.path_);
  size_ = other.size_;
  offset_ = other.offset_;
  eight_bit_ = other.eight_bit_;
  ends_with_crlf_ = other.ends_with_crlf_;
  buffer_ = std::move(other.buffer_);
  return *this;
}

spool_failure message_content::failure(int error) const {
  if (error < 0) {
    // Truncated behind the relay's back: what is left is not what was
    // accepted, and sending it would send something else.
    return {spool_errc::lost, "message " + id_ + ": " + path_ + " holds fewer than the " +
                                  std::to_string(size_) + " bytes that were stored"};
  }
  // A name that is gone stays gone (ENOENT, or ENOTDIR for a spool/ that
  // became something else); EIO, EMFILE, ENOMEM and the like may pass.
  const bool gone = error == ENOENT || error == ENOTDIR;
  return {gone ? spool_errc::lost : spool_errc::failed,
          "message " + id_ + ": cannot read " + path_ + ": " + std::strerror(error)};
}

spool_result<message_content> message_content::open_file(const std::filesystem::path& path,
                                                         std::string_view id, std::uint64_t size,
                                                         std::optional<bool> eight_bit) {
  message_content c;
  c.id_ = std::string(id);
  c.path_ = path.string();
  c.size_ = size;
  c.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (c.fd_ < 0) return c.failure(errno);
  struct stat st {};
  if (::fstat(c.fd_, &st) != 0) return c.failure(errno);
  if (static_cast<std::uint64_t>(st.st_size) != size) {
    return spool_failure{spool_errc::lost, "message " + c.id_ + ": " + c.path_ + " holds " +
                                               std::to_string(st.st_size) + " bytes, not the " +
                                               std::to_string(size) + " that were stored"};
  }
  // Read front to back once: let the kernel read ahead of each piece.
  ::posix_fadvise(c.fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  if (size >= 2) {
    char tail[2];
    if (const int error = pread_all(c.fd_, tail, 2, size - 2); error != 0) return c.failure(error);
    c.ends_with_crlf_ = tail[0] == '\r' && tail[1] == '\n';
  }
  if (eight_bit) {
    c.eight_bit_ = *eight_bit;
    return c;
  }
  for (;;) {
    auto piece = c.next();
    if (!piece) return piece.error();
    if (piece->empty()) break;
    if (has_8bit(*piece)) {
      c.eight_bit_ = true;
      break;
    }
  }
  c.rewind();
  return c;
}

spool_result<std::string_view> message_content::next() {
  if (offset_ >= size_) return std::string_view();
  const auto length =
      static_cast<std::size_t>(std::min<std::uint64_t>(content_chunk, size_ - offset_));
  if (fd_ < 0) {
    std::string_view piece(memory_.data() + offset_, length);
    offset_ += length;
    return piece;
  }
  if (buffer_.size() < content_chunk) buffer_.resize(content_chunk);
  if (const int error = pread_all(fd_, buffer_.data(), length, offset_); error != 0) {
    return failure(error);
  }
  offset_ += length;
  return std::string_view(buffer_.data(), length);
}

spool_result<std::string> message_content::read_prefix(std::uint64_t limit) {
  rewind();
  std::string out;
  out.reserve(static_cast<std::size_t>(std::min(limit, size_)));
  while (out.size() < limit) {
    auto piece = next();
    if (!piece) {
      rewind();
      return piece.error();
    }
    if (piece->empty()) break;
    out.append(piece->substr(
        0, static_cast<std::size_t>(std::min<std::uint64_t>(piece->size(), limit - out.size()))));
  }
  rewind();
  return out;
}

}  // namespace oauth_relay::relay
