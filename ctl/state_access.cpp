// The one place oauth-relayctl decides who touches the state directory. The
// privilege drop is for good (all three ids): nothing the tool does after it
// needs root, and a saved root id would be one more thing to get right.
#include "ctl/state_access.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>
#include <vector>

#include "common/clock.hpp"
#include "ctl/daemon_client.hpp"
#include "daemon/accounts_report.hpp"

namespace oauth_relay::ctl {
namespace {

bool acting_as_owner = false;

std::string user_name(uid_t uid) {
  std::vector<char> buffer(16 * 1024);
  passwd entry{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr)
    return found->pw_name;
  return "uid " + std::to_string(uid);
}

[[noreturn]] void cannot_switch(const std::string& dir, const std::string& owner, int error) {
  throw failure("cannot become " + owner + " (the owner of " + dir + "): " + std::strerror(error),
                "run oauth-relayctl as " + owner + ": sudo -u " + owner + " oauth-relayctl ...");
}

}  // namespace

void act_as_state_owner(const context& ctx) {
  if (acting_as_owner) return;
  const auto& dir = ctx.settings.state_dir;
  const std::string where = dir.string();
  const uid_t me = ::geteuid();
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    const int error = errno;
    if (error == ENOENT && me != 0) {
      // Created by the store, as this user: it will be the owner.
      acting_as_owner = true;
      return;
    }
    if (error == ENOENT) {
      throw failure(where + " (state_dir) does not exist",
                    "it belongs to the user oauth-relayd runs as: start oauth-relayd once "
                    "(systemctl start oauth-relay) or create it: install -d -m 0700 -o "
                    "oauth-relay -g oauth-relay " +
                        where);
    }
    throw failure("cannot examine " + where + " (state_dir): " + std::strerror(error),
                  "run oauth-relayctl as root or as the user oauth-relayd runs as");
  }
  if (S_ISLNK(st.st_mode)) {
    if (me == 0) {
      // Whoever may change the link would choose which directory root works in.
      throw failure(
          where +
              " (state_dir) is a symbolic link; oauth-relayctl run as root does "
              "not follow it",
          "set state_dir in " + ctx.config_path.string() + " to the directory it points to");
    }
    if (::stat(dir.c_str(), &st) != 0) {
      throw failure("cannot examine " + where + " (state_dir): " + std::strerror(errno),
                    "check that state_dir in " + ctx.config_path.string() + " is right");
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    throw failure(where + " (state_dir) is not a directory",
                  "check that state_dir in " + ctx.config_path.string() + " is right");
  }
  if (st.st_uid == me) {
    acting_as_owner = true;
    return;
  }
  const std::string owner = user_name(st.st_uid);
  if (me != 0) {
    throw failure(where + " (state_dir) belongs to " + owner + ", not to " + user_name(me),
                  "run oauth-relayctl as root (it then acts as " + owner + ") or as " + owner +
                      ": sudo -u " + owner + " oauth-relayctl ...");
  }
  // Groups first: after setresuid there is no right left to change them.
  if (::setgroups(0, nullptr) != 0) cannot_switch(where, owner, errno);
  if (::setresgid(st.st_gid, st.st_gid, st.st_gid) != 0) cannot_switch(where, owner, errno);
  if (::setresuid(st.st_uid, st.st_uid, st.st_uid) != 0) cannot_switch(where, owner, errno);
  // A drop that left a way back is no drop.
  if (::setuid(0) == 0 || ::geteuid() != st.st_uid || ::getegid() != st.st_gid) {
    cannot_switch(where, owner, EPERM);
  }
  acting_as_owner = true;
}

void store_token(const context& ctx, const token_to_store& token, std::ostream& out) {
  const auto control = control_socket_client(ctx);
  if (control.running()) {
    nlohmann::json body = {{"address", token.address}, {"refresh_token", token.refresh_token}};
    if (!token.access_token.empty()) {
      body["access_token"] = token.access_token;
      body["access_expires_at"] = token.access_expires_at;
    }
    const auto reply = control.post("/accounts/import", body);
    if (reply.status != 200) fail_with_reply("POST /accounts/import", reply);
    const auto answer = reply.json();
    out << "oauth-relayd stored the token and reloaded the account; mail waiting for "
        << token.address << " goes out now\n";
    if (answer.is_object() && answer.value("configured", true) == false) {
      out << "oauth-relayd's running configuration lacks " << token.address
          << ": systemctl reload oauth-relay\n";
    }
    return;
  }
  auto store = open_store(ctx);
  try {
    const auto generation = store->store_refresh_token(token.address, token.refresh_token);
    if (!token.access_token.empty()) {
      store->store_access_token(token.address, generation, token.access_token,
                                token.access_expires_at);
    }
  } catch (const auth::token_store_error& e) {
    throw failure(
        std::string("cannot store the refresh token: ") + e.what(),
        "run oauth-relayctl as root or as the owner of " + ctx.settings.state_dir.string());
  }
  out << "oauth-relayd is not running; it will use the token when it starts (systemctl start "
         "oauth-relay)\n";
}

void check_token_can_be_stored(const context& ctx) {
  if (control_socket_client(ctx).running()) return;
  open_store(ctx).reset();
}

std::string accounts_document(const context& ctx) {
  const auto control = control_socket_client(ctx);
  if (control.running()) {
    const auto reply = control.get("/accounts");
    if (reply.status != 200) fail_with_reply("GET /accounts", reply);
    return reply.body;
  }
  std::vector<auth::account_record> rows;
  {
    auto store = open_store(ctx);
    try {
      rows = store->load_all();
    } catch (const auth::token_store_error& e) {
      throw failure(
          std::string("cannot read the token store: ") + e.what(),
          "run oauth-relayctl as root or as the owner of " + ctx.settings.state_dir.string());
    }
  }
  return daemon::accounts_json(rows, ctx.settings.accounts, {}, now_seconds());
}

}  // namespace oauth_relay::ctl
