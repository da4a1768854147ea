// Who may send as which account, with the real daemon: clients running as
// other users (made for the test, run with setpriv) over loopback TCP and the
// Unix listener are refused for an account whose permit does not name them
// and accepted for one that does; their uid is in the Received: header and
// the log. From another host (a network namespace with a veth pair), AUTH is
// not offered in the clear.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <fstream>
#include <memory>
#include <optional>

#include "common/secret.hpp"
#include "fakes/test_pki.hpp"
#include "integration/support/relay_process.hpp"
#include "integration/support/scratch_user.hpp"
#include "integration/support/smtp_client.hpp"
#include "relay/smtp/logins.hpp"
#include "relay/spool/spool.hpp"

namespace oauth_relay::test_support {
namespace {

const std::string oauth_body =
    "hostname: relay.test\n"
    "oauth:\n"
    "  client_id: \"test-client.apps.googleusercontent.com\"\n"
    "  client_secret: \"s3cret-never-logged\"\n";

// swaks's last reply line from the server ("<** 550 ..." or "<-  250 ..."),
// for the step whose command line starts with `command`.
std::string swaks_reply_to(const std::string& transcript, const std::string& command) {
  const auto at = transcript.find(" -> " + command);
  if (at == std::string::npos) return "<not sent: " + command + ">";
  const auto reply = transcript.find('\n', at) + 1;
  return transcript.substr(reply, transcript.find('\n', reply) - reply);
}

std::vector<std::string> swaks_from(const std::string& server, const std::string& from) {
  std::vector<std::string> argv{"swaks",  "--from",      from,        "--to", "rcpt@example.org",
                                "--helo", "client.test", "--timeout", "20"};
  if (server.starts_with("unix:")) {
    argv.insert(argv.end(), {"--socket", server.substr(5)});
  } else {
    argv.insert(argv.end(), {"--server", server});
  }
  return argv;
}

std::string received_of(const relay_process& relay, const std::string& id) {
  relay::spool_reader reader(relay.state_dir());
  const auto content = reader.content(id);
  if (!content) return "<missing>";
  return content->substr(0, content->find("\r\n\tby "));
}

std::string queued_id_in(const std::string& transcript) {
  const auto at = transcript.find("queued as ");
  return at == std::string::npos ? "" : transcript.substr(at + 10, 16);
}

class identity : public testing::Test {
 protected:
  void SetUp() override {
    if (auto why = scratch_users_unavailable(); !why.empty()) {
      GTEST_SKIP() << "cannot make test users here: " << why;
    }
    group_.emplace("ort-g");
    user_a_.emplace("ort-a");
    user_b_.emplace("ort-b", std::vector<std::string>{group_->name()});
    // The socket's directory must be reachable by the test users; the
    // harness's own directory is private.
    ::chmod(socket_dir_.path().c_str(), 0755);
    socket_ = (socket_dir_.path() / "smtp.sock").string();
    relay_ = std::make_unique<relay_process>(oauth_body +
                                                 "accounts:\n"
                                                 "  - address: a@example.com\n"
                                                 "    permit:\n"
                                                 "      local_users: [" +
                                                 user_a_->name() +
                                                 "]\n"
                                                 "  - address: staff@example.com\n"
                                                 "    permit:\n"
                                                 "      local_groups: [" +
                                                 group_->name() +
                                                 "]\n"
                                                 "  - address: open@example.com\n",
                                             "[\"127.0.0.1:0\", \"unix:" + socket_ + "\"]");
    relay_->start();
  }

  std::string tcp() const { return "127.0.0.1:" + std::to_string(relay_->port()); }
  std::string unix_socket() const { return "unix:" + socket_; }

  std::optional<scratch_group> group_;
  std::optional<scratch_user> user_a_, user_b_;
  temp_dir socket_dir_;
  std::string socket_;
  std::unique_ptr<relay_process> relay_;
};

TEST_F(identity, a_user_sends_as_the_account_that_permits_it_and_no_other) {
  for (const auto& server : {tcp(), unix_socket()}) {
    SCOPED_TRACE(server);
    const auto own = user_a_->run(swaks_from(server, "a@example.com"));
    EXPECT_EQ(own.status, 0) << own.out << own.err;
    EXPECT_EQ(swaks_reply_to(own.out, "MAIL FROM:<a@example.com>"), "<-  250 2.1.0 Ok");
    const auto other = user_b_->run(swaks_from(server, "a@example.com"));
    EXPECT_NE(other.status, 0);
    EXPECT_EQ(swaks_reply_to(other.out, "MAIL FROM:<a@example.com>"),
              "<** 550 5.7.1 Sender <a@example.com> is not allowed to send through this relay")
        << other.out;
  }
  EXPECT_TRUE(relay_->wait_for_log("event=sender_refused session="));
  const auto log = relay_->log();
  EXPECT_NE(log.find("client=127.0.0.1 uid=" + std::to_string(user_b_->uid()) +
                     " from=a@example.com account=a@example.com reason=\"not in the account's "
                     "permit\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("client=unix uid=" + std::to_string(user_b_->uid()) + " from=a@example.com"),
            std::string::npos)
      << log;
}

TEST_F(identity, a_group_member_sends_as_the_group_account) {
  for (const auto& server : {tcp(), unix_socket()}) {
    SCOPED_TRACE(server);
    const auto member = user_b_->run(swaks_from(server, "staff@example.com"));
    EXPECT_EQ(member.status, 0) << member.out << member.err;
    const auto outsider = user_a_->run(swaks_from(server, "staff@example.com"));
    EXPECT_EQ(swaks_reply_to(outsider.out, "MAIL FROM:<staff@example.com>"),
              "<** 550 5.7.1 Sender <staff@example.com> is not allowed to send through this relay");
  }
  // Root is in neither permit: it is one more local user.
  smtp_client client(relay_->port());
  ASSERT_EQ(client.read_reply().code, 220);
  ASSERT_EQ(client.command("EHLO c").code, 250);
  EXPECT_EQ(client.command("MAIL FROM:<staff@example.com>").code, 550);
  EXPECT_EQ(client.command("MAIL FROM:<open@example.com>").code, 250);
}

TEST_F(identity, the_uid_goes_into_the_received_header_and_the_log) {
  const auto tcp_run = user_a_->run(swaks_from(tcp(), "a@example.com"));
  ASSERT_EQ(tcp_run.status, 0) << tcp_run.out;
  const auto unix_run = user_a_->run(swaks_from(unix_socket(), "open@example.com"));
  ASSERT_EQ(unix_run.status, 0) << unix_run.out;
  const std::string uid = std::to_string(user_a_->uid());
  EXPECT_EQ(received_of(*relay_, queued_id_in(tcp_run.out)),
            "Received: from client.test ([127.0.0.1] uid " + uid + ")");
  EXPECT_EQ(received_of(*relay_, queued_id_in(unix_run.out)),
            "Received: from client.test (unix socket uid " + uid + ")");
  EXPECT_NE(relay_->log().find("account=a@example.com recipients=1 size="), std::string::npos);
  EXPECT_NE(relay_->log().find(" uid=" + uid + "\n"), std::string::npos) << relay_->log();
}

TEST_F(identity, the_unix_socket_is_open_to_every_user_and_removed_at_stop) {
  struct stat st {};
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  EXPECT_EQ(relay_->endpoints().at(1), unix_socket());
  EXPECT_EQ(relay_->stop(SIGTERM), 0);
  EXPECT_NE(::stat(socket_.c_str(), &st), 0);
}

TEST(identity_listener, a_stale_unix_socket_is_replaced_and_a_live_one_is_not) {
  temp_dir dir;
  const auto path = (dir.path() / "smtp.sock").string();
  const std::string body = oauth_body + "accounts:\n  - address: open@example.com\n";
  relay_process first(body, "[\"127.0.0.1:0\", \"unix:" + path + "\"]");
  first.start();
  relay_process second(body, "[\"127.0.0.1:0\", \"unix:" + path + "\"]");
  EXPECT_THROW(second.start(), std::runtime_error);
  EXPECT_NE(second.log().find("cannot listen on unix: " + path +
                              ": another process serves it (is another oauth-relayd running?)"),
            std::string::npos)
      << second.log();
  first.kill9();  // the file stays behind
  second.start();
  EXPECT_EQ(second.endpoints().at(1), "unix:" + path);
}

TEST(identity_listener, a_unix_socket_passed_by_systemd_knows_its_clients) {
  temp_dir dir;
  const auto path = dir.path() / "smtp.sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(fd, 16), 0);
  relay_process relay(oauth_body + "accounts:\n  - address: open@example.com\n");
  relay.start({}, fd);
  ::close(fd);
  EXPECT_EQ(relay.endpoints(), std::vector<std::string>{"unix:" + path.string()});
  const auto r = run_command(swaks_from("unix:" + path.string(), "open@example.com"));
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(received_of(relay, queued_id_in(r.out)),
            "Received: from client.test (unix socket uid " + std::to_string(::getuid()) + ")");
  EXPECT_EQ(relay.stop(SIGTERM), 0);
  // systemd made the file and removes it; the daemon leaves it alone.
  EXPECT_TRUE(std::filesystem::exists(path));
}

// A second network namespace joined to this one by a veth pair: the only way
// to be "another host" without leaving the machine.
class other_host : public testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "network namespaces need root";
    const int pid = ::getpid();
    netns_ = "ort-" + std::to_string(pid);
    veth_ = "ort" + std::to_string(pid % 100000) + "a";
    peer_ = "ort" + std::to_string(pid % 100000) + "b";
    const std::string net =
        "10." + std::to_string(100 + pid % 100) + "." + std::to_string((pid / 100) % 64 * 4) + ".";
    relay_ip_ = net + "1";
    client_ip_ = net + "2";
    const std::vector<std::vector<std::string>> steps = {
        {"ip", "netns", "add", netns_},
        {"ip", "link", "add", veth_, "type", "veth", "peer", "name", peer_},
        {"ip", "link", "set", peer_, "netns", netns_},
        {"ip", "addr", "add", relay_ip_ + "/30", "dev", veth_},
        {"ip", "link", "set", veth_, "up"},
        {"ip", "-n", netns_, "addr", "add", client_ip_ + "/30", "dev", peer_},
        {"ip", "-n", netns_, "link", "set", peer_, "up"},
        {"ip", "-n", netns_, "link", "set", "lo", "up"},
    };
    for (const auto& step : steps) {
      const auto r = run_command(step);
      if (r.status != 0) {
        GTEST_SKIP() << "cannot make a network namespace here (" << step[1] << " " << step[2]
                     << "): " << r.err;
      }
      made_ = true;
    }
  }
  void TearDown() override {
    // The veth pair goes with the namespace that holds one end.
    if (made_) {
      run_command({"ip", "netns", "del", netns_});
      run_command({"ip", "link", "del", veth_});
    }
  }
  command_result from_other_host(std::vector<std::string> argv) const {
    argv.insert(argv.begin(), {"ip", "netns", "exec", netns_});
    return run_command(argv);
  }

  std::string netns_, veth_, peer_, relay_ip_, client_ip_;
  bool made_ = false;
};

TEST_F(other_host, auth_is_offered_only_after_starttls) {
  fakes::test_pki pki;
  temp_dir files;
  const auto pair = pki.issue({"relay.test"}, {relay_ip_});
  {
    std::ofstream(files.path() / "cert.pem") << pair.certificate;
    std::ofstream(files.path() / "key.pem") << pair.private_key;
    std::ofstream(files.path() / "logins")
        << "scanner:" << *relay::hash_password(secret("lan-printer-pw")) << "\n";
    ::chmod((files.path() / "logins").c_str(), 0600);
  }
  relay_process relay(oauth_body + "tls:\n  cert_file: " + (files.path() / "cert.pem").string() +
                          "\n  key_file: " + (files.path() / "key.pem").string() +
                          "\nclients:\n  allow: [\"127.0.0.0/8\", \"" + client_ip_ +
                          "\"]\n"
                          "  logins_file: " +
                          (files.path() / "logins").string() +
                          "\naccounts:\n  - address: shop@example.com\n    permit:\n"
                          "      logins: [scanner]\n",
                      "[\"127.0.0.1:0\", \"" + relay_ip_ + ":0\"]");
  relay.start();
  const auto& lan = relay.endpoints().at(1);
  ASSERT_TRUE(lan.starts_with(relay_ip_ + ":")) << lan;

  const auto plain = from_other_host({"swaks", "--server", lan, "--quit-after", "EHLO"});
  ASSERT_EQ(plain.status, 0) << plain.out << plain.err;
  EXPECT_NE(plain.out.find("<-  250-STARTTLS"), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find("AUTH"), std::string::npos) << plain.out;

  const auto forced = from_other_host({"swaks", "--server", lan, "--from", "shop@example.com",
                                       "--to", "r@example.org", "--auth", "PLAIN", "--auth-user",
                                       "scanner", "--auth-password", "lan-printer-pw"});
  EXPECT_NE(forced.status, 0);
  EXPECT_NE(forced.err.find("Host did not advertise authentication"), std::string::npos)
      << forced.out << forced.err;
  // And asked for anyway, in the clear: 538 (RFC 4954 §6), the password never checked.
  const auto colon = lan.rfind(':');
  const auto asked =
      from_other_host({"python3", "-c",
                       "import socket,sys\n"
                       "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=10)\n"
                       "s.sendall(b'EHLO lan.test\\r\\nAUTH PLAIN "
                       "AHNjYW5uZXIAbGFuLXByaW50ZXItcHc=\\r\\nQUIT\\r\\n')\n"
                       "d=b''\n"
                       "while True:\n"
                       "  c=s.recv(4096)\n"
                       "  if not c: break\n"
                       "  d+=c\n"
                       "print(d.decode())\n",
                       lan.substr(0, colon), lan.substr(colon + 1)});
  EXPECT_NE(asked.out.find("\r\n538 5.7.11 Encryption required for requested authentication "
                           "mechanism\r\n221 "),
            std::string::npos)
      << asked.out << asked.err;

  const auto secure =
      from_other_host({"swaks", "--server", lan, "--helo", "lan.test", "--from", "shop@example.com",
                       "--to", "r@example.org", "--tls", "--auth", "PLAIN", "--auth-user",
                       "scanner", "--auth-password", "lan-printer-pw"});
  ASSERT_EQ(secure.status, 0) << secure.out << secure.err;
  EXPECT_NE(secure.out.find("<~  250-AUTH PLAIN LOGIN"), std::string::npos) << secure.out;
  EXPECT_NE(secure.out.find("<~  235 2.7.0 Authentication successful"), std::string::npos);
  EXPECT_EQ(received_of(relay, queued_id_in(secure.out)),
            "Received: from lan.test ([" + client_ip_ + "] authenticated as scanner)");
}

}  // namespace
}  // namespace oauth_relay::test_support
