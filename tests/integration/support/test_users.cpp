// useradd/groupadd and userdel/groupdel from the passwd package, setpriv from
// util-linux. Tests run as root here; elsewhere create() says why it cannot.
#include "integration/support/test_users.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <atomic>

namespace oauth_relay::test_support {
namespace {

std::string first_line(const command_result& r) {
  const std::string& text = r.err.empty() ? r.out : r.err;
  return text.substr(0, text.find('\n'));
}

}  // namespace

std::string unique_name(const std::string& prefix) {
  static std::atomic<int> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

std::unique_ptr<test_group> test_group::create(const std::string& name, std::string& why_not) {
  if (::geteuid() != 0) {
    why_not = "creating a group needs root";
    return nullptr;
  }
  const auto r = run_command({"groupadd", "--system", name});
  const group* g = r.status == 0 ? ::getgrnam(name.c_str()) : nullptr;
  if (!g) {
    why_not = "groupadd " + name + " failed: " + first_line(r);
    return nullptr;
  }
  return std::make_unique<test_group>(name, g->gr_gid);
}

test_group::~test_group() {
  run_command({"groupdel", name_});
}

std::unique_ptr<test_user> test_user::create(const std::string& name,
                                             const std::vector<std::string>& groups,
                                             std::string& why_not) {
  if (::geteuid() != 0) {
    why_not = "creating a user needs root";
    return nullptr;
  }
  std::vector<std::string> argv{"useradd",      "--system", "--no-create-home",
                                "--user-group", "--shell",  "/usr/sbin/nologin"};
  std::string list;
  for (const auto& g : groups) list += (list.empty() ? "" : ",") + g;
  if (!list.empty()) {
    argv.push_back("--groups");
    argv.push_back(list);
  }
  argv.push_back(name);
  const auto r = run_command(argv);
  const passwd* p = r.status == 0 ? ::getpwnam(name.c_str()) : nullptr;
  if (!p) {
    why_not = "useradd " + name + " failed: " + first_line(r);
    return nullptr;
  }
  return std::make_unique<test_user>(name, p->pw_uid, p->pw_gid);
}

test_user::~test_user() {
  // --user-group made a group of the same name; userdel removes it with the user.
  run_command({"userdel", name_});
}

command_result test_user::run(const std::vector<std::string>& argv,
                              const std::string& input) const {
  std::vector<std::string> full{"setpriv", "--reuid=" + std::to_string(uid_),
                                "--regid=" + std::to_string(gid_), "--init-groups", "--"};
  full.insert(full.end(), argv.begin(), argv.end());
  return run_command(full, input);
}

}  // namespace oauth_relay::test_support
