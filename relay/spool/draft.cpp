// Draft writes never throw: the first failure is kept and the commit answers
// it (452 for a full disk, 451 otherwise), so a session reads DATA to its end.
#include "relay/spool/draft.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "relay/spool/content.hpp"

namespace oauth_relay::relay {
namespace {

// Returns 0 or the errno of the failed write.
int write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

}  // namespace

spool_draft::spool_draft(std::string id, std::filesystem::path files_dir)
    : id_(std::move(id)), files_dir_(std::move(files_dir)) {}

spool_draft::~spool_draft() {
  if (fd_ >= 0) {
    ::close(fd_);
    ::unlink((files_dir_ / id_).c_str());
  }
}

void spool_draft::spill() {
  fd_ = ::open((files_dir_ / id_).c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd_ < 0) write_errno_ = errno;
}

void spool_draft::append(std::string_view bytes) {
  size_ += bytes.size();
  if (!eight_bit_) eight_bit_ = has_8bit(bytes);
  if (write_errno_ != 0) return;
  if (fd_ < 0 && memory_.size() + bytes.size() <= spool_memory_limit) {
    memory_.append(bytes);
    return;
  }
  if (fd_ < 0) {
    spill();
    if (fd_ < 0) return;
    write_errno_ = write_all(fd_, memory_);
    std::string().swap(memory_);
    if (write_errno_ != 0) return;
  }
  write_errno_ = write_all(fd_, bytes);
}

int spool_draft::sync_file() {
  return ::fdatasync(fd_) == 0 ? 0 : errno;
}

void spool_draft::hand_over_file() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
}

}  // namespace oauth_relay::relay
