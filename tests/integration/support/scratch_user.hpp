// Throwaway system groups and users for tests that need another uid than
// root's (a monitoring user, a service user owning a state directory), made
// with groupadd/useradd and removed when the object goes. Root only.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "integration/support/relay_process.hpp"

namespace oauth_relay::test_support {

// Empty when groupadd/useradd can be used here (root, the commands present);
// otherwise why not, for GTEST_SKIP.
std::string scratch_users_unavailable();

class scratch_group {
 public:
  // `stem` plus this process's id: tests running at once do not collide.
  explicit scratch_group(const std::string& stem);
  ~scratch_group();
  scratch_group(const scratch_group&) = delete;
  scratch_group& operator=(const scratch_group&) = delete;

  const std::string& name() const { return name_; }
  gid_t gid() const { return gid_; }

 private:
  std::string name_;
  gid_t gid_ = 0;
};

class scratch_user {
 public:
  // A system user without a home or a shell, in a group of its own name and
  // in `supplementary` groups.
  explicit scratch_user(const std::string& stem, std::vector<std::string> supplementary = {});
  ~scratch_user();
  scratch_user(const scratch_user&) = delete;
  scratch_user& operator=(const scratch_user&) = delete;

  const std::string& name() const { return name_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }

  // Runs argv as this user with its groups (setpriv), as `sudo -u` would.
  command_result run(const std::vector<std::string>& argv, const std::string& input = {}) const;

 private:
  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

}  // namespace oauth_relay::test_support
