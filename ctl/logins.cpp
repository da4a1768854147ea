// The logins file is rewritten whole, atomically (a temporary file beside it,
// synced, renamed over it, the directory synced), keeping every other line,
// its owner, group and mode. A new file gets root and the config file's group
// (the service's, 0640 root:oauth-relay in the package) and mode 0640.
#include "ctl/logins.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "common/secret.hpp"
#include "config/validators.hpp"
#include "config/yaml_reader.hpp"
#include "relay/smtp/auth_exchange.hpp"
#include "relay/smtp/logins.hpp"

namespace oauth_relay::ctl {
namespace {

namespace fs = std::filesystem;

constexpr mode_t new_file_mode = 0640;

const fs::path& logins_path(const context& ctx) {
  if (!ctx.settings.clients_logins_file) {
    throw failure(
        "clients.logins_file is not set in " + ctx.config_path.string(),
        "set it under clients: (logins_file: /etc/oauth-relay/logins) and run this again");
  }
  return *ctx.settings.clients_logins_file;
}

void require_name(const std::string& name) {
  if (!config::is_login_name(name)) {
    throw failure("\"" + name + "\" is not a login name",
                  "use 1 to 64 letters, digits, \".\", \"_\", \"-\", \"@\" or \"+\", not starting "
                  "with \"-\"");
  }
}

struct current_file {
  std::vector<relay::logins_line> lines;
  bool exists = false;
  struct stat st {};
};

current_file read_current(const fs::path& path) {
  current_file current;
  if (::stat(path.c_str(), &current.st) != 0) {
    if (errno == ENOENT) return current;
    throw failure("cannot read " + path.string() + ": " + std::strerror(errno),
                  "run oauth-relayctl as root (or as the file's owner)");
  }
  current.exists = true;
  auto contents = config::read_file(path);
  if (contents.error != 0) {
    throw failure("cannot read " + path.string() + ": " + std::strerror(contents.error),
                  "run oauth-relayctl as root (or as the file's owner)");
  }
  auto parsed = relay::parse_logins(contents.text, path.string());
  wipe(contents.text);
  if (!parsed.errors.empty()) {
    std::string all;
    for (const auto& e : parsed.errors) all += (all.empty() ? "" : "; ") + e;
    throw failure(all, "correct or delete those lines in " + path.string() + " and run this again");
  }
  current.lines = std::move(parsed.lines);
  return current;
}

void write_atomically(const fs::path& path, const current_file& current,
                      const std::vector<relay::logins_line>& lines, const context& ctx) {
  std::string text;
  for (const auto& line : lines) text += line.text + "\n";
  const fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::string temp = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0) {
    throw failure("cannot create a file in " + dir.string() + ": " + std::strerror(errno),
                  "run oauth-relayctl as root");
  }
  const auto undo = [&](const std::string& what) {
    const int e = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    wipe(text);
    throw failure("cannot write " + path.string() + ": " + what + ": " + std::strerror(e),
                  "check the space and rights in " + dir.string());
  };
  uid_t owner = current.exists ? current.st.st_uid : ::geteuid();
  gid_t group = current.exists ? current.st.st_gid : ::getegid();
  mode_t mode = current.exists ? (current.st.st_mode & 07777) : new_file_mode;
  if (!current.exists) {
    // The daemon reads it as the config file's group, as it reads the config.
    struct stat config_st {};
    if (::stat(ctx.config_path.c_str(), &config_st) == 0) group = config_st.st_gid;
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) undo("write");
    done += static_cast<std::size_t>(n);
  }
  if (::fchown(fd, owner, group) != 0) undo("chown");
  if (::fchmod(fd, mode) != 0) undo("chmod");
  if (::fsync(fd) != 0) undo("fsync");
  if (::close(fd) != 0) {
    ::unlink(temp.c_str());
    throw failure("cannot write " + path.string() + ": " + std::strerror(errno),
                  "check the space in " + dir.string());
  }
  wipe(text);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    throw failure("cannot replace " + path.string() + ": " + std::strerror(e),
                  "run oauth-relayctl as root");
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

// One line from standard input, without its line ending.
secret read_line(std::istream& in) {
  std::string line;
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  secret out(line);
  wipe(line);
  return out;
}

secret ask_without_echo(const std::string& prompt) {
  termios saved{};
  if (::tcgetattr(STDIN_FILENO, &saved) != 0) {
    throw failure("standard input is not a terminal to ask the password on",
                  "give it on standard input with --password-stdin");
  }
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  std::cerr << prompt << std::flush;
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  auto password = read_line(std::cin);
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
  std::cerr << "\n";
  return password;
}

secret get_password(const std::string& name, bool from_stdin) {
  secret password;
  if (from_stdin) {
    password = read_line(std::cin);
  } else {
    password = ask_without_echo("Password for " + name + ": ");
    const auto again = ask_without_echo("Again: ");
    if (again.value() != password.value()) {
      throw failure("the two passwords differ", "run the command again");
    }
  }
  if (password.empty()) throw failure("the password is empty", "give one");
  if (password.size() > relay::max_credential_length) {
    throw failure("the password is longer than " + std::to_string(relay::max_credential_length) +
                      " bytes (SMTP AUTH clients need not send more)",
                  "choose a shorter one");
  }
  return password;
}

std::string method_of(const std::string& hash) {
  if (hash.starts_with("$y$")) return "yescrypt";
  if (hash.starts_with("$6$")) return "sha512-crypt";
  return "?";
}

}  // namespace

int run_login_add(const context& ctx, const std::string& name, bool password_stdin) {
  require_name(name);
  const fs::path& path = logins_path(ctx);
  auto current = read_current(path);
  const auto password = get_password(name, password_stdin);
  auto hash = relay::hash_password(password);
  if (!hash) {
    throw failure("this system's crypt(3) cannot make a yescrypt hash",
                  "install libcrypt1 from Debian 12 or later");
  }
  auto lines = current.lines;
  bool replaced = false;
  for (auto& line : lines) {
    if (line.entry && line.entry->name == name) {
      line.text = name + ":" + *hash;
      replaced = true;
    }
  }
  if (!replaced) lines.push_back({name + ":" + *hash, relay::login_entry{name, *hash}});
  write_atomically(path, current, lines, ctx);
  std::cout << "login " << name << (replaced ? " changed in " : " added to ") << path.string()
            << "\n";
  bool permitted = false;
  for (const auto& account : ctx.settings.accounts) {
    if (!account.permit) continue;
    for (const auto& login : account.permit->logins) permitted = permitted || login == name;
  }
  if (!permitted) {
    std::cout << "note: no account's permit names " << name
              << " yet; it can send only as accounts without a permit\n";
  }
  std::cout << "oauth-relayd uses it after: systemctl reload oauth-relay\n";
  return 0;
}

int run_login_remove(const context& ctx, const std::string& name) {
  require_name(name);
  const fs::path& path = logins_path(ctx);
  auto current = read_current(path);
  std::vector<relay::logins_line> lines;
  bool found = false;
  for (auto& line : current.lines) {
    if (line.entry && line.entry->name == name) {
      found = true;
    } else {
      lines.push_back(line);
    }
  }
  if (!found) {
    throw failure("there is no login " + name + " in " + path.string(),
                  "oauth-relayctl login list shows the logins");
  }
  write_atomically(path, current, lines, ctx);
  std::cout << "login " << name << " removed from " << path.string() << "\n"
            << "oauth-relayd stops taking it after: systemctl reload oauth-relay\n";
  return 0;
}

int run_login_list(const context& ctx) {
  const fs::path& path = logins_path(ctx);
  const auto current = read_current(path);
  std::vector<std::vector<std::string>> rows{{"LOGIN", "HASH", "PERMITTED FOR"}};
  for (const auto& line : current.lines) {
    if (!line.entry) continue;
    std::string accounts;
    for (const auto& account : ctx.settings.accounts) {
      if (!account.permit) continue;
      for (const auto& login : account.permit->logins) {
        if (login == line.entry->name) accounts += (accounts.empty() ? "" : " ") + account.address;
      }
    }
    rows.push_back(
        {line.entry->name, method_of(line.entry->hash), accounts.empty() ? "-" : accounts});
  }
  if (rows.size() == 1) {
    std::cout << "no logins in " << path.string()
              << (current.exists ? "" : " (it does not exist yet)") << "\n";
    return 0;
  }
  print_table(std::cout, rows);
  std::string open;
  for (const auto& account : ctx.settings.accounts) {
    if (!account.permit) open += (open.empty() ? "" : " ") + account.address;
  }
  if (!open.empty())
    std::cout << "without a permit (any client may send as them): " << open << "\n";
  return 0;
}

}  // namespace oauth_relay::ctl
