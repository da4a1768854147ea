// The upstream client against the Gmail fake on loopback with real TLS:
// delivery byte for byte, the XOAUTH2 dance, certificate and host checks,
// no credentials without TLS, per-recipient results and faults.
#include "relay/delivery/upstream_client.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>

#include "fakes/fake_gmail.hpp"
#include "fakes/test_pki.hpp"

namespace oauth_relay::relay {
namespace {

namespace asio = boost::asio;
using fakes::fake_gmail;

const std::string user = "alice@example.com";
const std::string good_token = "ya29.a0-good-token-for-tests";
const std::string bad_token = "ya29.a0-expired-token-for-tests";

envelope make_envelope(std::vector<std::string> recipients, std::string sender = user) {
  envelope env;
  env.sender = std::move(sender);
  env.account = user;
  for (auto& r : recipients) env.recipients.push_back(recipient{std::move(r), {}});
  return env;
}

std::size_t count_of(const std::vector<std::string>& v, const std::string& item) {
  return static_cast<std::size_t>(std::count(v.begin(), v.end(), item));
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// send() of a content held in memory, as the spool hands out a small message.
asio::awaitable<send_result> send_text(upstream_client& client, const envelope& env,
                                       std::string text) {
  const bool eight_bit = has_8bit(text);
  message_content content(std::move(text), eight_bit);
  co_return co_await client.send(env, content);
}

class UpstreamClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("upstream_client_test." + std::to_string(::getpid()) + "." +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
    tls_.emplace(make_upstream_tls_context(pki_.write_ca(dir_ / "ca.pem")));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A fake with a certificate for "localhost" and 127.0.0.1 from the trusted CA.
  std::unique_ptr<fake_gmail> start(fake_gmail::mode mode = fake_gmail::mode::starttls) {
    return start_with(mode, pki_.issue({"localhost"}, {"127.0.0.1"}));
  }
  std::unique_ptr<fake_gmail> start_with(fake_gmail::mode mode, fakes::pem_pair certificate) {
    auto fake = std::make_unique<fake_gmail>(mode, std::move(certificate));
    fake->set_token_validator([](const std::string& u, const std::string& token) {
      return u == user && token == good_token;
    });
    return fake;
  }

  upstream_options options(const fake_gmail& fake, std::string host = "localhost") const {
    upstream_options o;
    o.host = std::move(host);
    o.port = fake.port();
    o.tls = mode_of(fake);
    o.helo_name = "relay.example.com";
    o.timeout = std::chrono::seconds(10);
    o.id = "test";
    return o;
  }

  config::upstream_tls mode_of(const fake_gmail&) const { return tls_mode_; }

  // Runs a coroutine on the test's io_context to its end.
  template <typename F>
  auto run(F f) {
    auto future = asio::co_spawn(ioc_, f(), asio::use_future);
    ioc_.restart();
    ioc_.run();
    return future.get();
  }

  // connect + authenticate with the good token; false (with failures noted) otherwise.
  asio::awaitable<bool> login(upstream_client& client) {
    const auto connected = co_await client.connect();
    EXPECT_TRUE(connected.ok()) << connected.message;
    if (!connected.ok()) co_return false;
    const auto auth = co_await client.authenticate(user, good_token);
    EXPECT_TRUE(auth.ok()) << auth.message;
    co_return auth.ok();
  }

  // One connection, login, one message; the send_result (all deferred if login failed).
  send_result deliver(const fake_gmail& fake, const envelope& env, message_content& content) {
    return run([&]() -> asio::awaitable<send_result> {
      const auto executor = co_await asio::this_coro::executor;
      upstream_client client(executor, *tls_, options(fake));
      const bool logged_in = co_await login(client);
      if (!logged_in) co_return send_result{};
      auto result = co_await client.send(env, content);
      co_await client.quit();
      co_return result;
    });
  }
  send_result deliver(const fake_gmail& fake, const envelope& env, std::string_view text) {
    message_content content{std::string(text), has_8bit(text)};
    return deliver(fake, env, content);
  }

  // `bytes` as the spool hands out a large message: its file, opened.
  message_content in_file(const std::string& bytes, const std::string& name = "content") {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    auto opened = message_content::open_file(path, name, bytes.size(), has_8bit(bytes));
    EXPECT_TRUE(opened) << opened.error().detail;
    return std::move(*opened);
  }

  fakes::test_pki pki_;
  std::filesystem::path dir_;
  std::optional<asio::ssl::context> tls_;
  asio::io_context ioc_;
  config::upstream_tls tls_mode_ = config::upstream_tls::starttls;
};

// --- delivery ---------------------------------------------------------------

// Lines starting with "." (one alone, which would end DATA unstuffed), and no CRLF at the end.
const std::string dotted_content =
    "From: alice@example.com\r\nSubject: dots\r\n\r\n.starts with a dot\r\n.\r\n..two dots\r\n"
    "middle . dot\r\n.last line without CRLF";

TEST_F(UpstreamClientTest, StarttlsDeliversContentByteExact) {
  auto fake = start();
  const auto env = make_envelope({"bob@example.org", "carol@example.net"});
  const auto result = deliver(*fake, env, dotted_content);

  ASSERT_EQ(result.recipients.size(), 2u);
  for (const auto& r : result.recipients) {
    EXPECT_EQ(r.status, delivery_status::delivered) << r.address;
    EXPECT_EQ(r.reply.code, 250);
    EXPECT_EQ(r.reply.enhanced, "2.0.0");
    EXPECT_TRUE(r.from_upstream);
  }
  EXPECT_TRUE(result.all_delivered());
  ASSERT_TRUE(fake->wait_for_messages(1, std::chrono::seconds(5)));
  const auto messages = fake->messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].content, dotted_content + "\r\n");
  EXPECT_EQ(messages[0].user, user);
  EXPECT_EQ(messages[0].sender, user);
  EXPECT_EQ(messages[0].recipients,
            (std::vector<std::string>{"bob@example.org", "carol@example.net"}));
  EXPECT_EQ(fake->tls_handshakes(), 1u);
  const auto commands = fake->commands();
  EXPECT_EQ(count_of(commands, "EHLO relay.example.com"), 2u);  // before and after STARTTLS
  EXPECT_EQ(count_of(commands, "STARTTLS"), 1u);
  EXPECT_EQ(count_of(commands, "QUIT"), 1u);
}

TEST_F(UpstreamClientTest, ImplicitTlsDeliversContentByteExact) {
  tls_mode_ = config::upstream_tls::implicit;
  auto fake = start(fake_gmail::mode::implicit);
  const std::string content = "Subject: implicit\r\n\r\n.hello\r\n";
  const auto result = deliver(*fake, make_envelope({"bob@example.org"}), content);
  EXPECT_TRUE(result.all_delivered()) << result.message;
  ASSERT_EQ(fake->messages().size(), 1u);
  EXPECT_EQ(fake->messages()[0].content, content);
  EXPECT_EQ(count_of(fake->commands(), "STARTTLS"), 0u);
  EXPECT_EQ(count_of(fake->commands(), "EHLO relay.example.com"), 1u);
}

TEST_F(UpstreamClientTest, LargeContentCrossesChunkBoundaries) {
  auto fake = start();
  std::string content;
  for (int i = 0; content.size() < 300 * 1024; ++i) {
    content += (i % 7 == 0 ? ".line " : "line ") + std::to_string(i) + " \xc3\xa9t\xc3\xa9\r\n";
  }
  const auto result = deliver(*fake, make_envelope({"bob@example.org"}), content);
  EXPECT_TRUE(result.all_delivered()) << result.message;
  ASSERT_EQ(fake->messages().size(), 1u);
  EXPECT_TRUE(fake->messages()[0].content == content);
}

// Lines of filler adding up to exactly `size` octets; with `ends_line` the
// last two are CR LF, so the octet after them starts a line.
std::string filler(std::size_t size, bool ends_line) {
  std::string out;
  while (out.size() + 100 <= size) out += std::string(98, 'f') + "\r\n";
  const std::size_t rest = size - out.size();
  if (ends_line && rest >= 2) return out + std::string(rest - 2, 'g') + "\r\n";
  return out + std::string(rest, 'g');
}

struct boundary_case {
  const char* name;
  std::size_t at;    // where `text` starts
  bool after_line;   // the filler before it ends with CR LF
  std::string text;  // around the first piece boundary, at content_chunk
};

// The content is read in pieces of content_chunk: a line starting with "."
// exactly at a piece boundary, or a piece ending between CR and LF, must be
// stuffed as any other (a lone "." unstuffed would end DATA early and the
// server would take the rest for commands).
TEST_F(UpstreamClientTest, DotsAtPieceBoundariesAreStuffedFromAFileOrMemory) {
  const std::vector<boundary_case> cases = {
      {"a dotted line starts a piece", content_chunk, true, ".starts the piece\r\n"},
      {"a lone dot starts a piece", content_chunk, true, ".\r\n"},
      {"two dots start a piece", content_chunk, true, "..\r\n"},
      {"a piece ends in the dot of a lone-dot line", content_chunk - 1, true, ".\r\nnext\r\n"},
      {"a piece ends in CR, the next starts with LF and a dot", content_chunk - 1, false,
       "\r\n.after\r\n"},
      {"a piece ends in CR LF, the next starts with a lone dot", content_chunk - 2, false,
       "\r\n.\r\n"},
      {"the second boundary too", 2 * content_chunk, true, ".\r\n..\r\n"},
  };
  auto fake = start();
  std::vector<std::string> sent;
  const auto results = run([&]() -> asio::awaitable<std::vector<send_result>> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    std::vector<send_result> out;
    const bool logged_in = co_await login(client);
    if (!logged_in) co_return out;
    const auto env = make_envelope({"bob@example.org"});
    for (const auto& c : cases) {
      std::string content = filler(c.at, c.after_line) + c.text;
      content += filler(2 * content_chunk + 500 - content.size(), true) + ".last\r\n";
      const bool eight_bit = has_8bit(content);
      message_content memory(content, eight_bit);
      message_content file = in_file(content, std::to_string(out.size()));
      out.push_back(co_await client.send(env, memory));
      out.push_back(co_await client.send(env, file));
      sent.push_back(content);
      sent.push_back(content);
    }
    co_await client.quit();
    co_return out;
  });
  ASSERT_EQ(results.size(), 2 * cases.size());
  const auto messages = fake->messages();
  ASSERT_EQ(messages.size(), sent.size());
  for (std::size_t i = 0; i < sent.size(); ++i) {
    const auto& c = cases[i / 2];
    EXPECT_TRUE(results[i].all_delivered()) << c.name << ": " << results[i].message;
    EXPECT_TRUE(messages[i].content == sent[i])
        << c.name << (i % 2 == 0 ? " (memory)" : " (file)") << ": around the boundary "
        << ::testing::PrintToString(messages[i].content.substr(c.at - 4, 16));
  }
  EXPECT_EQ(fake->connections(), 1u);
}

// The largest message Gmail takes is about 35 MB: 30 MB from a content file
// arrive byte for byte, with SIZE and BODY from what the spool noted.
TEST_F(UpstreamClientTest, ThirtyMegabytesFromAFileArriveByteForByte) {
  auto fake = start();
  std::string content = "Subject: big\r\n\r\n";
  content.reserve(30 * 1024 * 1024 + 200);
  for (int i = 0; content.size() < 30 * 1024 * 1024; ++i) {
    content += (i % 5 == 0 ? "." : "") + std::to_string(i) + " caf\xc3\xa9 " +
               std::string(static_cast<std::size_t>(i % 90), 'x') + "\r\n";
  }
  auto file = in_file(content);
  const auto result = deliver(*fake, make_envelope({"bob@example.org"}), file);
  EXPECT_TRUE(result.all_delivered()) << result.message;
  const auto messages = fake->messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_EQ(messages[0].content.size(), content.size());
  EXPECT_TRUE(messages[0].content == content);
  EXPECT_EQ(messages[0].mail_command, "MAIL FROM:<alice@example.com> SIZE=" +
                                          std::to_string(content.size()) + " BODY=8BITMIME");
}

// A content file cut short behind the relay's back: the connection closes
// before the end of data, so the server keeps nothing, and the result says
// why (the scheduler turns `lost` into a bounce).
TEST_F(UpstreamClientTest, AContentThatCannotBeReadToItsEndIsNeverCompleted) {
  auto fake = start();
  const std::string content = filler(3 * content_chunk, true);
  auto file = in_file(content);
  std::filesystem::resize_file(dir_ / "content", content_chunk + 10);
  bool usable_after = true;
  const auto result = run([&]() -> asio::awaitable<send_result> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    const bool logged_in = co_await login(client);
    if (!logged_in) co_return send_result{};
    const auto env = make_envelope({"bob@example.org"});
    auto r = co_await client.send(env, file);
    usable_after = client.usable();
    co_return r;
  });
  ASSERT_TRUE(result.content_failure.has_value());
  EXPECT_EQ(result.content_failure->code, spool_errc::lost);
  EXPECT_EQ(result.content_failure->detail,
            "message content: " + (dir_ / "content").string() + " holds fewer than the " +
                std::to_string(content.size()) + " bytes that were stored");
  ASSERT_EQ(result.recipients.size(), 1u);
  EXPECT_EQ(result.recipients[0].status, delivery_status::deferred);
  EXPECT_FALSE(result.recipients[0].from_upstream);
  EXPECT_FALSE(usable_after);
  EXPECT_TRUE(fake->messages().empty());
}

TEST_F(UpstreamClientTest, SeveralMessagesOnOneConnection) {
  auto fake = start();
  const auto results = run([&]() -> asio::awaitable<std::vector<send_result>> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    std::vector<send_result> out;
    const bool logged_in = co_await login(client);
    if (!logged_in) co_return out;
    for (int i = 0; i < 3; ++i) {
      const auto env = make_envelope({"bob@example.org"});
      const std::string content = "Subject: " + std::to_string(i) + "\r\n\r\nbody\r\n";
      auto r = co_await send_text(client, env, content);
      out.push_back(std::move(r));
      EXPECT_TRUE(client.usable());
    }
    co_await client.quit();
    EXPECT_FALSE(client.usable());
    co_return out;
  });
  ASSERT_EQ(results.size(), 3u);
  for (const auto& r : results) EXPECT_TRUE(r.all_delivered()) << r.message;
  const auto messages = fake->messages();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[2].content, "Subject: 2\r\n\r\nbody\r\n");
  EXPECT_EQ(fake->connections(), 1u);
  EXPECT_EQ(fake->logins(), 1u);
  EXPECT_EQ(count_of(fake->commands(), "RSET"), 0u);  // not needed after a completed transaction
}

// --- MAIL parameters --------------------------------------------------------

TEST_F(UpstreamClientTest, SizeAndBodyParameters) {
  auto fake = start();
  const std::string seven_bit = "Subject: a\r\n\r\nplain\r\n";
  const std::string eight_bit = "Subject: b\r\n\r\ncaf\xc3\xa9\r\n";
  const std::string unterminated = "Subject: c\r\n\r\nno end";
  deliver(*fake, make_envelope({"bob@example.org"}), seven_bit);
  deliver(*fake, make_envelope({"bob@example.org"}), eight_bit);
  deliver(*fake, make_envelope({"bob@example.org"}), unterminated);
  const auto messages = fake->messages();
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_EQ(messages[0].mail_command,
            "MAIL FROM:<alice@example.com> SIZE=" + std::to_string(seven_bit.size()));
  EXPECT_EQ(messages[1].mail_command, "MAIL FROM:<alice@example.com> SIZE=" +
                                          std::to_string(eight_bit.size()) + " BODY=8BITMIME");
  // SIZE counts the CRLF the client adds (RFC 1870 §3: the octets sent, unstuffed).
  EXPECT_EQ(messages[2].mail_command,
            "MAIL FROM:<alice@example.com> SIZE=" + std::to_string(unterminated.size() + 2));
  EXPECT_EQ(messages[2].content, unterminated + "\r\n");
}

TEST_F(UpstreamClientTest, NullSenderAndSmtputf8) {
  auto fake = start();
  auto env = make_envelope({"j\xc3\xbcrgen@example.de"}, "");
  env.params.smtputf8 = true;
  const auto result = deliver(*fake, env, "Subject: x\r\n\r\ny\r\n");
  EXPECT_TRUE(result.all_delivered()) << result.message;
  ASSERT_EQ(fake->messages().size(), 1u);
  EXPECT_EQ(fake->messages()[0].mail_command, "MAIL FROM:<> SIZE=17 SMTPUTF8");
  EXPECT_EQ(fake->messages()[0].recipients[0], "j\xc3\xbcrgen@example.de");
}

TEST_F(UpstreamClientTest, Smtputf8NotOfferedFailsWithoutSending) {
  auto fake = start();
  fake->set_offer_smtputf8(false);
  auto env = make_envelope({"j\xc3\xbcrgen@example.de"});
  env.params.smtputf8 = true;
  const auto result = deliver(*fake, env, "Subject: x\r\n\r\ny\r\n");
  ASSERT_EQ(result.recipients.size(), 1u);
  EXPECT_EQ(result.recipients[0].status, delivery_status::failed);
  EXPECT_EQ(result.recipients[0].reply.code, 553);
  EXPECT_EQ(result.recipients[0].reply.enhanced, "5.6.7");
  EXPECT_FALSE(result.recipients[0].from_upstream);
  EXPECT_TRUE(contains(result.message, "SMTPUTF8"));
  EXPECT_TRUE(fake->messages().empty());
  for (const auto& c : fake->commands()) EXPECT_FALSE(c.starts_with("MAIL")) << c;
}

TEST_F(UpstreamClientTest, DsnParametersOnlyWhenAdvertised) {
  auto env = make_envelope({"bob@example.org"});
  env.params.ret = smtp::dsn_ret::headers;
  env.params.envid = "QQ314159";
  env.recipients[0].params.notify = {true, false, true, true, false};
  env.recipients[0].params.orcpt = "rfc822;bob@example.org";

  auto plain = start();
  deliver(*plain, env, "a\r\n");
  ASSERT_EQ(plain->messages().size(), 1u);
  EXPECT_EQ(plain->messages()[0].mail_command, "MAIL FROM:<alice@example.com> SIZE=3");
  EXPECT_EQ(plain->messages()[0].rcpt_commands,
            (std::vector<std::string>{"RCPT TO:<bob@example.org>"}));

  auto with_dsn = start();
  with_dsn->set_offer_dsn(true);
  deliver(*with_dsn, env, "a\r\n");
  ASSERT_EQ(with_dsn->messages().size(), 1u);
  EXPECT_EQ(with_dsn->messages()[0].mail_command,
            "MAIL FROM:<alice@example.com> SIZE=3 RET=HDRS ENVID=QQ314159");
  EXPECT_EQ(with_dsn->messages()[0].rcpt_commands,
            (std::vector<std::string>{
                "RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.org"}));
}

// --- pipelining ------------------------------------------------------------

TEST_F(UpstreamClientTest, PipelinesMailRcptDataInOneWriteWhenAdvertised) {
  auto fake = start();
  const auto result =
      deliver(*fake, make_envelope({"a@example.org", "b@example.org", "c@example.org"}), "x\r\n");
  EXPECT_TRUE(result.all_delivered()) << result.message;
  ASSERT_EQ(fake->messages().size(), 1u);
  EXPECT_TRUE(fake->messages()[0].pipelined);
}

TEST_F(UpstreamClientTest, OneCommandAtATimeWithoutPipelining) {
  auto fake = start();
  fake->set_offer_pipelining(false);
  const auto result =
      deliver(*fake, make_envelope({"a@example.org", "b@example.org", "c@example.org"}), "x\r\n");
  EXPECT_TRUE(result.all_delivered()) << result.message;
  ASSERT_EQ(fake->messages().size(), 1u);
  EXPECT_FALSE(fake->messages()[0].pipelined);
  EXPECT_EQ(fake->messages()[0].recipients.size(), 3u);
}

// --- per-recipient results and faults -------------------------------------

TEST_F(UpstreamClientTest, OneOfThreeRecipientsRejected) {
  for (bool pipelining : {true, false}) {
    SCOPED_TRACE(pipelining ? "pipelining" : "one by one");
    auto fake = start();
    fake->set_offer_pipelining(pipelining);
    fake->reject_recipient("nobody@example.org");
    const auto result = deliver(
        *fake, make_envelope({"a@example.org", "nobody@example.org", "c@example.org"}), "x\r\n");
    ASSERT_EQ(result.recipients.size(), 3u);
    EXPECT_EQ(result.recipients[0].status, delivery_status::delivered);
    EXPECT_EQ(result.recipients[1].status, delivery_status::failed);
    EXPECT_EQ(result.recipients[1].address, "nobody@example.org");
    EXPECT_EQ(result.recipients[1].reply.code, 550);
    EXPECT_EQ(result.recipients[1].reply.enhanced, "5.1.1");
    EXPECT_EQ(result.recipients[1].reply.lines.front(),
              "The email account that you tried to reach does not exist. Please try");
    EXPECT_EQ(result.recipients[2].status, delivery_status::delivered);
    EXPECT_EQ(result.count(delivery_status::delivered), 2u);
    ASSERT_EQ(fake->messages().size(), 1u);
    EXPECT_EQ(fake->messages()[0].recipients,
              (std::vector<std::string>{"a@example.org", "c@example.org"}));
  }
}

TEST_F(UpstreamClientTest, NoRecipientAcceptedResetsAndConnectionStaysUsable) {
  for (bool pipelining : {true, false}) {
    SCOPED_TRACE(pipelining ? "pipelining" : "one by one");
    auto fake = start();
    fake->set_offer_pipelining(pipelining);
    fake->reject_recipient("x@example.org");
    fake->reject_recipient("y@example.org");
    const auto results = run([&]() -> asio::awaitable<std::vector<send_result>> {
      const auto executor = co_await asio::this_coro::executor;
      upstream_client client(executor, *tls_, options(*fake));
      std::vector<send_result> out;
      const bool logged_in = co_await login(client);
      if (!logged_in) co_return out;
      const auto rejected = make_envelope({"x@example.org", "y@example.org"});
      const auto accepted = make_envelope({"z@example.org"});
      auto first = co_await send_text(client, rejected, "1\r\n");
      out.push_back(std::move(first));
      EXPECT_TRUE(client.usable());
      auto second = co_await send_text(client, accepted, "2\r\n");
      out.push_back(std::move(second));
      co_return out;
    });
    ASSERT_EQ(results.size(), 2u);
    EXPECT_EQ(results[0].count(delivery_status::failed), 2u);
    EXPECT_TRUE(results[1].all_delivered()) << results[1].message;
    ASSERT_EQ(fake->messages().size(), 1u);
    EXPECT_EQ(fake->messages()[0].content, "2\r\n");
    EXPECT_EQ(count_of(fake->commands(), "RSET"), 1u);
  }
}

TEST_F(UpstreamClientTest, Temporary451AfterDataDefersAndConnectionStaysUsable) {
  auto fake = start();
  fake->fail_data_451(1);
  const auto results = run([&]() -> asio::awaitable<std::vector<send_result>> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    std::vector<send_result> out;
    const bool logged_in = co_await login(client);
    if (!logged_in) co_return out;
    const auto two = make_envelope({"a@example.org", "b@example.org"});
    const auto one = make_envelope({"a@example.org"});
    auto first = co_await send_text(client, two, "1\r\n");
    out.push_back(std::move(first));
    EXPECT_TRUE(client.usable());
    auto second = co_await send_text(client, one, "1\r\n");
    out.push_back(std::move(second));
    co_return out;
  });
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].count(delivery_status::deferred), 2u);
  ASSERT_TRUE(results[0].data_reply);
  EXPECT_EQ(results[0].data_reply->code, 451);
  EXPECT_EQ(results[0].recipients[0].reply.enhanced, "4.3.0");
  EXPECT_TRUE(results[0].recipients[0].from_upstream);
  EXPECT_TRUE(results[1].all_delivered());
  EXPECT_EQ(fake->messages().size(), 1u);
}

TEST_F(UpstreamClientTest, DroppedConnectionAfterDataDefers) {
  auto fake = start();
  fake->drop_after_data(1);
  bool usable_after = true;
  const auto result = run([&]() -> asio::awaitable<send_result> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    const bool logged_in = co_await login(client);
    if (!logged_in) co_return send_result{};
    const auto env = make_envelope({"a@example.org", "b@example.org"});
    auto r = co_await send_text(client, env, "x\r\n");
    usable_after = client.usable();
    co_return r;
  });
  ASSERT_EQ(result.recipients.size(), 2u);
  for (const auto& r : result.recipients) {
    EXPECT_EQ(r.status, delivery_status::deferred);
    EXPECT_FALSE(r.from_upstream);
    EXPECT_EQ(r.reply.code, 451);
    EXPECT_EQ(r.reply.enhanced, "4.4.2");
  }
  EXPECT_FALSE(result.data_reply);
  EXPECT_TRUE(contains(result.message, "connection closed by upstream")) << result.message;
  EXPECT_FALSE(usable_after);
  EXPECT_TRUE(fake->messages().empty());
}

TEST_F(UpstreamClientTest, SlowUpstreamTimesOut) {
  auto fake = start();
  fake->set_reply_delay(std::chrono::milliseconds(2000));
  const auto result = run([&]() -> asio::awaitable<connect_result> {
    auto o = options(*fake);
    o.timeout = std::chrono::milliseconds(200);
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, o);
    auto r = co_await client.connect();
    EXPECT_FALSE(client.usable());
    co_return r;
  });
  EXPECT_EQ(result.status, connect_status::network);
  EXPECT_EQ(result.message,
            "timed out after 200ms while waiting for the reply to the connection "
            "(greeting)");
}

TEST_F(UpstreamClientTest, Greeting421IsRefused) {
  auto fake = start();
  fake->greet_421(1);
  const auto result = run([&]() -> asio::awaitable<connect_result> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    auto r = co_await client.connect();
    co_return r;
  });
  EXPECT_EQ(result.status, connect_status::refused);
  EXPECT_TRUE(contains(result.message, "upstream greeted with 421 4.7.0 Try again later"))
      << result.message;
}

// A client kept alive after its last operation (as `oauth-relayctl test`
// does) leaves no deadline timer behind: the loop runs out of work at once,
// after a QUIT as after a refused connection.
TEST_F(UpstreamClientTest, AFinishedClientLeavesNoWorkBehind) {
  auto fake = start();
  fake->greet_421(1);
  upstream_client refused(ioc_.get_executor(), *tls_, options(*fake));
  upstream_client used(ioc_.get_executor(), *tls_, options(*fake));
  connect_result first;
  bool quit = false;
  asio::co_spawn(
      ioc_,
      [&]() -> asio::awaitable<void> {
        first = co_await refused.connect();
        const bool logged_in = co_await login(used);
        if (logged_in) co_await used.quit();
        quit = logged_in;
      },
      asio::detached);
  ioc_.run_for(std::chrono::seconds(5));  // the options' timeout is 10 s
  EXPECT_TRUE(ioc_.stopped()) << "work left after the last operation";
  EXPECT_EQ(first.status, connect_status::refused);
  EXPECT_TRUE(quit);
  EXPECT_FALSE(refused.usable());
  EXPECT_FALSE(used.usable());
}

TEST_F(UpstreamClientTest, SendWithoutLoginDefersAndSendsNothing) {
  auto fake = start();
  const auto result = run([&]() -> asio::awaitable<send_result> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    const auto c = co_await client.connect();
    EXPECT_TRUE(c.ok()) << c.message;
    const auto env = make_envelope({"a@example.org"});
    auto r = co_await send_text(client, env, "x\r\n");
    co_return r;
  });
  ASSERT_EQ(result.recipients.size(), 1u);
  EXPECT_EQ(result.recipients[0].status, delivery_status::deferred);
  EXPECT_EQ(result.message, "not authenticated");
  for (const auto& c : fake->commands()) EXPECT_FALSE(c.starts_with("MAIL")) << c;
}

// --- XOAUTH2 ------------------------------------------------------------------

TEST_F(UpstreamClientTest, Xoauth2Succeeds) {
  auto fake = start();
  const auto result = run([&]() -> asio::awaitable<auth_result> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    const auto c = co_await client.connect();
    EXPECT_TRUE(c.ok()) << c.message;
    EXPECT_TRUE(client.capabilities().offers_auth("XOAUTH2"));
    EXPECT_FALSE(client.capabilities().starttls);  // the EHLO after TLS
    auto r = co_await client.authenticate(user, good_token);
    EXPECT_TRUE(client.authenticated());
    co_return r;
  });
  EXPECT_EQ(result.status, auth_status::ok);
  ASSERT_TRUE(result.reply);
  EXPECT_EQ(result.reply->wire(), "235 2.7.0 Accepted\r\n");
  EXPECT_EQ(fake->logins(), 1u);
  EXPECT_EQ(fake->auth_failures(), 0u);
  EXPECT_EQ(count_of(fake->commands(), "AUTH XOAUTH2 ********"), 1u);
}

TEST_F(UpstreamClientTest, RejectedTokenDanceThenRetryWithNewToken) {
  auto fake = start();
  ::testing::internal::CaptureStderr();
  std::vector<auth_result> results = run([&]() -> asio::awaitable<std::vector<auth_result>> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    std::vector<auth_result> out;
    const auto c = co_await client.connect();
    EXPECT_TRUE(c.ok()) << c.message;
    auto rejected = co_await client.authenticate(user, bad_token);
    out.push_back(std::move(rejected));
    EXPECT_TRUE(client.usable());
    EXPECT_FALSE(client.authenticated());
    // The caller refreshes the token and tries once more on the same connection.
    auto accepted = co_await client.authenticate(user, good_token);
    out.push_back(std::move(accepted));
    EXPECT_TRUE(client.authenticated());
    co_return out;
  });
  const std::string log = ::testing::internal::GetCapturedStderr();

  ASSERT_EQ(results.size(), 2u);
  const auth_result& rejected = results[0];
  EXPECT_EQ(rejected.status, auth_status::token_rejected);
  ASSERT_TRUE(rejected.reply);
  EXPECT_EQ(rejected.reply->code, 535);
  EXPECT_EQ(rejected.reply->enhanced, "5.7.8");
  EXPECT_TRUE(contains(rejected.message,
                       R"({"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"})"))
      << rejected.message;
  EXPECT_EQ(results[1].status, auth_status::ok);

  // The client answered the 334 with an empty line, as Gmail expects.
  const auto commands = fake->commands();
  const auto auth = std::find(commands.begin(), commands.end(), "AUTH XOAUTH2 ********");
  ASSERT_NE(auth, commands.end());
  ASSERT_NE(auth + 1, commands.end());
  EXPECT_EQ(*(auth + 1), "");
  EXPECT_EQ(fake->auth_failures(), 1u);
  EXPECT_EQ(fake->logins(), 1u);

  // No token in any message or log line.
  EXPECT_TRUE(contains(log, "upstream_auth_failed")) << log;
  for (const auto& token : {bad_token, good_token}) {
    EXPECT_FALSE(contains(log, token));
    EXPECT_FALSE(contains(log, smtp::xoauth2_initial_response(user, token)));
    for (const auto& r : results) EXPECT_FALSE(contains(r.message, token));
  }
}

TEST_F(UpstreamClientTest, ForcedAuthFailureIsTokenRejected) {
  auto fake = start();
  fake->reject_auth(1);
  const auto result = run([&]() -> asio::awaitable<auth_result> {
    const auto executor = co_await asio::this_coro::executor;
    upstream_client client(executor, *tls_, options(*fake));
    co_await client.connect();
    auto r = co_await client.authenticate(user, good_token);
    co_return r;
  });
  EXPECT_EQ(result.status, auth_status::token_rejected);
  EXPECT_EQ(fake->logins(), 0u);
  EXPECT_EQ(fake->auth_failures(), 1u);
}

TEST_F(UpstreamClientTest, StarttlsInjectedBytesAreDiscarded) {
  auto fake = start();
  // Were these taken as the reply to the EHLO after TLS, AUTH XOAUTH2 would
  // seem not to be offered and the login would fail.
  fake->inject_after_starttls("250-smtp.gmail.com\r\n250 PIPELINING\r\n");
  const auto result = deliver(*fake, make_envelope({"a@example.org"}), "x\r\n");
  EXPECT_TRUE(result.all_delivered()) << result.message;
  EXPECT_EQ(fake->logins(), 1u);
}

// --- TLS and credentials --------------------------------------------------

struct connect_then_auth {
  connect_result connected;
  auth_result auth;
};

class UpstreamTlsTest : public UpstreamClientTest {
 protected:
  connect_then_auth attempt(const fake_gmail& fake, std::string host) {
    return run([&]() -> asio::awaitable<connect_then_auth> {
      const auto executor = co_await asio::this_coro::executor;
      upstream_client client(executor, *tls_, options(fake, host));
      connect_then_auth out;
      out.connected = co_await client.connect();
      // Also after a failed connect: the client must refuse without sending.
      out.auth = co_await client.authenticate(user, good_token);
      co_return out;
    });
  }
};

TEST_F(UpstreamTlsTest, UnknownCaFailsAndNoAuthIsSent) {
  for (auto mode : {fake_gmail::mode::starttls, fake_gmail::mode::implicit}) {
    tls_mode_ = mode == fake_gmail::mode::implicit ? config::upstream_tls::implicit
                                                   : config::upstream_tls::starttls;
    fakes::test_pki stranger;
    auto fake = start_with(mode, stranger.issue({"localhost"}, {"127.0.0.1"}));
    const auto result = attempt(*fake, "localhost");
    EXPECT_EQ(result.connected.status, connect_status::tls_failed);
    EXPECT_TRUE(contains(result.connected.message,
                         "certificate verify failed: unable to get local issuer certificate"))
        << result.connected.message;
    EXPECT_FALSE(result.auth.ok());
    EXPECT_EQ(fake->auth_attempts(), 0u);
    EXPECT_EQ(fake->tls_handshakes(), 0u);
  }
}

TEST_F(UpstreamTlsTest, CertificateForAnotherHostFails) {
  auto fake = start_with(fake_gmail::mode::starttls, pki_.issue({"mail.example.org"}, {}));
  const auto result = attempt(*fake, "localhost");
  EXPECT_EQ(result.connected.status, connect_status::tls_failed);
  EXPECT_TRUE(contains(result.connected.message, "certificate verify failed: hostname mismatch"))
      << result.connected.message;
  EXPECT_EQ(fake->auth_attempts(), 0u);
}

TEST_F(UpstreamTlsTest, IpLiteralVerifiedAgainstIpSan) {
  auto fake = start_with(fake_gmail::mode::starttls, pki_.issue({}, {"127.0.0.1"}));
  const auto result = attempt(*fake, "127.0.0.1");
  EXPECT_TRUE(result.connected.ok()) << result.connected.message;
  EXPECT_TRUE(result.auth.ok()) << result.auth.message;
  EXPECT_EQ(fake->logins(), 1u);
}

TEST_F(UpstreamTlsTest, IpLiteralWithoutIpSanFails) {
  auto fake = start_with(fake_gmail::mode::starttls, pki_.issue({"localhost"}, {}));
  const auto result = attempt(*fake, "127.0.0.1");
  EXPECT_EQ(result.connected.status, connect_status::tls_failed);
  EXPECT_TRUE(contains(result.connected.message, "certificate verify failed: IP address mismatch"))
      << result.connected.message;
  EXPECT_EQ(fake->auth_attempts(), 0u);
}

TEST_F(UpstreamTlsTest, ServerWithoutStarttlsGetsNoCredentials) {
  auto fake = start();
  fake->set_offer_starttls(false);  // offers AUTH XOAUTH2 in the clear instead
  const auto result = attempt(*fake, "localhost");
  EXPECT_EQ(result.connected.status, connect_status::no_starttls);
  EXPECT_EQ(result.connected.message, "upstream did not offer STARTTLS; no credentials were sent");
  EXPECT_FALSE(result.auth.ok());
  EXPECT_EQ(fake->auth_attempts(), 0u);
  for (const auto& c : fake->commands()) EXPECT_FALSE(c.starts_with("AUTH")) << c;
}

TEST(UpstreamTlsContext, UnreadableCaFileNamesIt) {
  try {
    make_upstream_tls_context(std::filesystem::path("/nonexistent/ca.pem"));
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_TRUE(contains(e.what(), "/nonexistent/ca.pem")) << e.what();
  }
}

}  // namespace
}  // namespace oauth_relay::relay
