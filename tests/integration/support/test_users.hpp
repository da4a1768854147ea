// System users and groups made for one test and removed after it, and
// running a command as one of them (setpriv), so that the daemon sees a
// client of another uid on loopback TCP and on its Unix socket.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {

class test_group {
 public:
  // groupadd --system; nothing (and `why_not` says why) when it cannot.
  static std::unique_ptr<test_group> create(const std::string& name, std::string& why_not);
  test_group(std::string name, gid_t gid) : name_(std::move(name)), gid_(gid) {}
  test_group(const test_group&) = delete;
  test_group& operator=(const test_group&) = delete;
  ~test_group();  // groupdel
  const std::string& name() const { return name_; }
  gid_t gid() const { return gid_; }

 private:
  std::string name_;
  gid_t gid_ = 0;
};

class test_user {
 public:
  // useradd --system --no-create-home, with `groups` as supplementary groups.
  static std::unique_ptr<test_user> create(const std::string& name,
                                           const std::vector<std::string>& groups,
                                           std::string& why_not);
  test_user(std::string name, uid_t uid, gid_t gid)
      : name_(std::move(name)), uid_(uid), gid_(gid) {}
  test_user(const test_user&) = delete;
  test_user& operator=(const test_user&) = delete;
  ~test_user();  // userdel
  const std::string& name() const { return name_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }

  // `argv` run as this user with its groups (setpriv --init-groups).
  command_result run(const std::vector<std::string>& argv, const std::string& input = {}) const;

 private:
  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

// A name no other run of the tests uses at the same time: PREFIX-PID-N, at
// most 32 characters (useradd's limit).
std::string unique_name(const std::string& prefix);

}  // namespace oauth_relay::test_support
