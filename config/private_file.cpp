// See private_file.hpp for why an existing file is never opened here.
#include "config/private_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace oauth_relay {

std::string ensure_private_file(const std::filesystem::path& path) {
  // O_EXCL never follows a symbolic link; O_NOFOLLOW says so where it is read.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::fchmod(fd, 0600);  // whatever the umask
    ::close(fd);         // no SQLite connection can hold locks on a file just created
    return {};
  }
  if (errno != EEXIST) return path.string() + ": cannot create: " + std::strerror(errno);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return path.string() + ": cannot examine: " + std::strerror(errno);
  }
  if (S_ISLNK(st.st_mode)) {
    return path.string() + ": is a symbolic link; refusing to follow it (remove it)";
  }
  if (!S_ISREG(st.st_mode)) return path.string() + ": is not a regular file";
  // Even when it is 0600 already: on a read-only file system this is where
  // the daemon learns it, with the reason, before SQLite's vaguer "unable to
  // open". Not followed if it became a link since: glibc changes the mode
  // through an O_PATH descriptor, whose close drops no lock (see the header).
  if (::fchmodat(AT_FDCWD, path.c_str(), 0600, AT_SYMLINK_NOFOLLOW) != 0) {
    return path.string() + ": cannot make private: " + std::strerror(errno);
  }
  return {};
}

}  // namespace oauth_relay
