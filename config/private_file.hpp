// Creating the daemon's private state files (0600) without disturbing SQLite.
#pragma once

#include <filesystem>
#include <string>

namespace oauth_relay {

// Makes sure `path` exists with mode 0600 before SQLite opens it (SQLite would
// create it with the process umask). Returns an error text, empty on success.
// A symbolic link or anything but a regular file is refused, never followed.
//
// The file is only opened with a raw descriptor when it does not exist yet:
// closing any descriptor of a file drops every POSIX lock the process holds
// on it, including those of SQLite connections already open in this process.
// Another process would then believe it is the database's last user,
// checkpoint, and delete the WAL that this process is still writing to.
std::string ensure_private_file(const std::filesystem::path& path);

}  // namespace oauth_relay
