// groupadd/useradd/userdel/groupdel through run_command; ids read back with
// getgrnam/getpwnam so the tests can compare owners.
#include "integration/support/scratch_user.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <stdexcept>

namespace oauth_relay::test_support {
namespace {

std::string unique(const std::string& stem) {
  // Group and user names stay within 32 characters.
  return stem.substr(0, 20) + "-" + std::to_string(::getpid());
}

void must(const std::vector<std::string>& argv) {
  const auto r = run_command(argv);
  if (r.status != 0) {
    std::string line;
    for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
    throw std::runtime_error(line + " failed (" + std::to_string(r.status) + "): " + r.err);
  }
}

}  // namespace

std::string scratch_users_unavailable() {
  if (::geteuid() != 0) return "needs root to create users and groups";
  for (const char* tool : {"/usr/sbin/groupadd", "/usr/sbin/useradd", "/usr/bin/setpriv"}) {
    if (::access(tool, X_OK) != 0) return std::string(tool) + " is not installed";
  }
  return {};
}

scratch_group::scratch_group(const std::string& stem) : name_(unique(stem)) {
  must({"groupadd", "--system", name_});
  const group* g = ::getgrnam(name_.c_str());
  if (g == nullptr) throw std::runtime_error("groupadd made no group " + name_);
  gid_ = g->gr_gid;
}

scratch_group::~scratch_group() {
  run_command({"groupdel", name_});
}

scratch_user::scratch_user(const std::string& stem, std::vector<std::string> supplementary)
    : name_(unique(stem)) {
  std::vector<std::string> argv = {"useradd",          "--system",    "--user-group",
                                   "--no-create-home", "--shell",     "/usr/sbin/nologin",
                                   "--home-dir",       "/nonexistent"};
  if (!supplementary.empty()) {
    std::string list;
    for (const auto& g : supplementary) list += (list.empty() ? "" : ",") + g;
    argv.insert(argv.end(), {"--groups", list});
  }
  argv.push_back(name_);
  must(argv);
  const passwd* p = ::getpwnam(name_.c_str());
  if (p == nullptr) throw std::runtime_error("useradd made no user " + name_);
  uid_ = p->pw_uid;
  gid_ = p->pw_gid;
}

scratch_user::~scratch_user() {
  run_command({"userdel", name_});  // removes its own group too (USERGROUPS_ENAB)
  run_command({"groupdel", name_});
}

command_result scratch_user::run(const std::vector<std::string>& argv,
                                 const std::string& input) const {
  std::vector<std::string> full = {"setpriv", "--reuid=" + name_, "--regid=" + name_,
                                   "--init-groups", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_command(full, input);
}

}  // namespace oauth_relay::test_support
