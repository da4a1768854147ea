// See private_file.hpp for why an existing file is never opened here.
#include "config/private_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace oauth_relay {

std::string ensure_private_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::fchmod(fd, 0600);  // whatever the umask
    ::close(fd);         // no SQLite connection can hold locks on a file just created
    return {};
  }
  if (errno != EEXIST) return path.string() + ": cannot create: " + std::strerror(errno);
  if (::chmod(path.c_str(), 0600) != 0) {
    return path.string() + ": cannot make private: " + std::strerror(errno);
  }
  return {};
}

}  // namespace oauth_relay
