// The file side of a listening Unix socket, for the SMTP listener's `unix:`
// entries (and any other socket the daemon serves on a path).
#include "common/socket_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <boost/asio/local/stream_protocol.hpp>

namespace oauth_relay {
namespace {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

std::system_error path_error(int error, const std::string& what, const std::filesystem::path& path,
                             const std::string& problem) {
  return std::system_error(error, std::generic_category(),
                           what + " " + path.string() + ": " + problem);
}

}  // namespace

socket_file::socket_file(asio::io_context& io, generic_acceptor& acceptor,
                         const std::filesystem::path& path, mode_t mode, mode_t directory_mode,
                         const std::string& what)
    : path_(path) {
  namespace fs = std::filesystem;
  const auto dir = path_.parent_path();
  std::error_code ec;
  if (!dir.empty() && !fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw path_error(ec.value(), what, path_, "cannot create " + dir.string());
    ::chmod(dir.c_str(), directory_mode);
  }
  local::endpoint endpoint;
  try {
    endpoint = local::endpoint(path_.string());
  } catch (const boost::system::system_error&) {
    throw path_error(ENAMETOOLONG, what, path_, "path too long for a Unix socket");
  }
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      throw path_error(EEXIST, what, path_,
                       "exists and is not a socket; remove it or change the path");
    }
    // A socket file survives a crash. Replace it only when nobody answers on it.
    local::socket probe(io);
    boost::system::error_code connect_ec;
    probe.connect(endpoint, connect_ec);
    if (!connect_ec) {
      throw path_error(EADDRINUSE, what, path_,
                       "another process serves it (is another oauth-relayd running?)");
    }
    if (::unlink(path_.c_str()) != 0 && errno != ENOENT) {
      throw path_error(errno, what, path_, "cannot remove the stale socket");
    }
  }
  try {
    const asio::generic::stream_protocol::endpoint generic(endpoint.data(), endpoint.size());
    acceptor.open(generic.protocol());
    acceptor.bind(generic);
    // bind() created it under the daemon's umask (0077); set the mode meant.
    if (::chmod(path_.c_str(), mode) != 0) {
      throw path_error(errno, what, path_, "cannot set its mode");
    }
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    throw path_error(e.code().value(), what, path_, "cannot listen: " + e.code().message());
  }
  if (::lstat(path_.c_str(), &st) == 0) {
    device_ = st.st_dev;
    inode_ = st.st_ino;
  }
  bound_ = true;
}

socket_file::socket_file(socket_file&& other) noexcept
    : path_(std::move(other.path_)),
      device_(other.device_),
      inode_(other.inode_),
      bound_(other.bound_) {
  other.bound_ = false;
}

socket_file& socket_file::operator=(socket_file&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::move(other.path_);
    device_ = other.device_;
    inode_ = other.inode_;
    bound_ = other.bound_;
    other.bound_ = false;
  }
  return *this;
}

socket_file::~socket_file() {
  remove();
}

void socket_file::remove() {
  if (!bound_) return;
  bound_ = false;
  struct stat st {};
  if (::lstat(path_.c_str(), &st) == 0 && st.st_dev == device_ && st.st_ino == inode_) {
    ::unlink(path_.c_str());
  }
}

}  // namespace oauth_relay
