// A listening Unix socket's file: its directory made when missing, a stale
// file from a crash replaced only when nobody answers on it, its mode set
// after bind, and on stop removed only if it is still ours (a newer daemon
// may already have replaced it).
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>

#include <boost/asio/basic_socket_acceptor.hpp>
#include <boost/asio/generic/stream_protocol.hpp>
#include <boost/asio/io_context.hpp>

namespace oauth_relay {

// An acceptor for TCP and Unix sockets alike (Asio has no typedef for it).
using generic_acceptor = boost::asio::basic_socket_acceptor<boost::asio::generic::stream_protocol>;

class socket_file {
 public:
  socket_file() = default;
  // Binds and listens on `path` with `acceptor`, the file mode `mode`; a
  // directory it has to create gets `directory_mode`. Throws
  // std::system_error whose text starts with `what` and the path.
  socket_file(boost::asio::io_context& io, generic_acceptor& acceptor,
              const std::filesystem::path& path, mode_t mode, mode_t directory_mode,
              const std::string& what);
  socket_file(socket_file&&) noexcept;
  socket_file& operator=(socket_file&&) noexcept;
  socket_file(const socket_file&) = delete;
  socket_file& operator=(const socket_file&) = delete;
  ~socket_file();  // remove()

  const std::filesystem::path& path() const { return path_; }
  // Unlinks the file if it is still the one bound here.
  void remove();

 private:
  std::filesystem::path path_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  bool bound_ = false;
};

}  // namespace oauth_relay
