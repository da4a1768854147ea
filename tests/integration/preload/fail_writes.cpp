// LD_PRELOAD fault injector for the fault tests: while the file named by
// OAUTH_RELAY_FAIL_WRITES exists, every call that would change a file under
// the directory OAUTH_RELAY_FAIL_WRITES_UNDER fails with the errno written in
// that file ("EROFS", "EIO" or "ENOSPC"; EROFS when empty). Reads keep
// working, as on a filesystem the kernel remounted read-only after an error.
// "EIO-DIRSYNC" fails only fsync() of a directory (with EIO), as a journal
// that cannot commit a new file's name while file data still goes through. The daemon is not
// changed in any way: this stands in for a disk, which a test cannot remount
// read-only while SQLite holds its files open (mount answers EBUSY).
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace {

// Whether the flag file asks for directory syncs alone to fail.
bool only_directory_sync = false;

// The errno to fail with now, or 0 when writes go through.
int failure_now() {
  only_directory_sync = false;
  static const char* flag = getenv("OAUTH_RELAY_FAIL_WRITES");
  if (flag == nullptr) return 0;
  // Plain syscalls only: this runs inside write() and open().
  using open_fn = int (*)(const char*, int, ...);
  static auto real_open = reinterpret_cast<open_fn>(dlsym(RTLD_NEXT, "open"));
  using read_fn = ssize_t (*)(int, void*, size_t);
  static auto real_read = reinterpret_cast<read_fn>(dlsym(RTLD_NEXT, "read"));
  const int fd = real_open(flag, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char text[16] = {};
  const ssize_t n = real_read(fd, text, sizeof text - 1);
  close(fd);
  if (n > 0 && strncmp(text, "EIO-DIRSYNC", 11) == 0) {
    only_directory_sync = true;
    return EIO;
  }
  if (n > 0 && strncmp(text, "EIO", 3) == 0) return EIO;
  if (n > 0 && strncmp(text, "ENOSPC", 6) == 0) return ENOSPC;
  return EROFS;
}

const char* watched_dir() {
  static char resolved[PATH_MAX] = {};
  static bool done = false;
  if (!done) {
    done = true;
    const char* dir = getenv("OAUTH_RELAY_FAIL_WRITES_UNDER");
    if (dir == nullptr || realpath(dir, resolved) == nullptr) resolved[0] = '\0';
  }
  return resolved;
}

bool under_watched(const char* path) {
  const char* dir = watched_dir();
  const size_t n = strlen(dir);
  return n > 0 && strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

bool path_watched(const char* path) {
  if (path == nullptr) return false;
  char resolved[PATH_MAX];
  if (path[0] != '/') {
    // Relative paths: resolve the directory part against the working directory.
    if (getcwd(resolved, sizeof resolved) == nullptr) return false;
    if (strlen(resolved) + strlen(path) + 2 > sizeof resolved) return false;
    strcat(resolved, "/");
    strcat(resolved, path);
    return under_watched(resolved);
  }
  return under_watched(path);
}

bool fd_watched(int fd) {
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  char target[PATH_MAX];
  const ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return false;
  target[n] = '\0';
  return under_watched(target);
}

// Fails the call (returns true, errno set) when `fd` is watched and failing.
bool fail_fd(int fd) {
  const int e = failure_now();
  if (e == 0 || only_directory_sync || !fd_watched(fd)) return false;
  errno = e;
  return true;
}

bool fail_path(const char* path) {
  const int e = failure_now();
  if (e == 0 || only_directory_sync || !path_watched(path)) return false;
  errno = e;
  return true;
}

constexpr int write_flags = O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND;

template <typename F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t count) {
  static auto real = next<ssize_t (*)(int, const void*, size_t)>("write");
  if (fail_fd(fd)) return -1;
  return real(fd, buf, count);
}

ssize_t pwrite(int fd, const void* buf, size_t count, off_t offset) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off_t)>("pwrite");
  if (fail_fd(fd)) return -1;
  return real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void* buf, size_t count, off64_t offset) {
  static auto real = next<ssize_t (*)(int, const void*, size_t, off64_t)>("pwrite64");
  if (fail_fd(fd)) return -1;
  return real(fd, buf, count, offset);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  static auto real = next<ssize_t (*)(int, const struct iovec*, int)>("writev");
  if (fail_fd(fd)) return -1;
  return real(fd, iov, count);
}

int fsync(int fd) {
  static auto real = next<int (*)(int)>("fsync");
  const int e = failure_now();
  if (e != 0 && only_directory_sync && fd_watched(fd)) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
      errno = e;
      return -1;
    }
    return real(fd);
  }
  if (fail_fd(fd)) return -1;
  return real(fd);
}

int fdatasync(int fd) {
  static auto real = next<int (*)(int)>("fdatasync");
  if (fail_fd(fd)) return -1;
  return real(fd);
}

int ftruncate(int fd, off_t length) {
  static auto real = next<int (*)(int, off_t)>("ftruncate");
  if (fail_fd(fd)) return -1;
  return real(fd, length);
}

int ftruncate64(int fd, off64_t length) {
  static auto real = next<int (*)(int, off64_t)>("ftruncate64");
  if (fail_fd(fd)) return -1;
  return real(fd, length);
}

int fchmod(int fd, mode_t mode) {
  static auto real = next<int (*)(int, mode_t)>("fchmod");
  if (fail_fd(fd)) return -1;
  return real(fd, mode);
}

int open(const char* path, int flags, ...) {
  static auto real = next<int (*)(const char*, int, ...)>("open");
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list args;
    va_start(args, flags);
    mode = static_cast<mode_t>(va_arg(args, int));
    va_end(args);
  }
  if ((flags & write_flags) != 0 && fail_path(path)) return -1;
  return real(path, flags, mode);
}

int open64(const char* path, int flags, ...) {
  static auto real = next<int (*)(const char*, int, ...)>("open64");
  mode_t mode = 0;
  if ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE) {
    va_list args;
    va_start(args, flags);
    mode = static_cast<mode_t>(va_arg(args, int));
    va_end(args);
  }
  if ((flags & write_flags) != 0 && fail_path(path)) return -1;
  return real(path, flags, mode);
}

int unlink(const char* path) {
  static auto real = next<int (*)(const char*)>("unlink");
  if (fail_path(path)) return -1;
  return real(path);
}

int rename(const char* from, const char* to) {
  static auto real = next<int (*)(const char*, const char*)>("rename");
  if (fail_path(from) || fail_path(to)) return -1;
  return real(from, to);
}

int mkdir(const char* path, mode_t mode) {
  static auto real = next<int (*)(const char*, mode_t)>("mkdir");
  if (fail_path(path)) return -1;
  return real(path, mode);
}

}  // extern "C"
