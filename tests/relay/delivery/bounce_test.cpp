// RFC 3464 bounces: who gets one, and what it says.
#include "relay/delivery/bounce.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/text.hpp"

namespace oauth_relay::relay {
namespace {

bounce_input sample() {
  bounce_input in;
  in.reporting_host = "relay.test";
  in.upstream_host = "smtp.gmail.com";
  in.original_id = "0123456789abcdef";
  in.arrival_time = 1790000000;
  in.now = 1790000100;
  in.original.sender = "app@example.com";
  in.original.account = "alice@example.com";
  failed_recipient f;
  f.rcpt.address = "nobody@example.org";
  f.status = "5.1.1";
  f.diagnostic = "550 5.1.1 The email account that you tried to reach does not exist.";
  in.failed.push_back(f);
  return in;
}

TEST(bounce, reports_each_failed_recipient_in_rfc3464_form) {
  auto in = sample();
  const std::string original = "Subject: hello\r\nMessage-ID: <m@example.com>\r\n\r\nbody\r\n";
  in.original_content = original;
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->env.sender, "");
  EXPECT_EQ(b->env.account, "alice@example.com");
  ASSERT_EQ(b->env.recipients.size(), 1u);
  EXPECT_EQ(b->env.recipients[0].address, "app@example.com");
  const auto& c = b->content;
  EXPECT_NE(c.find("To: <app@example.com>\r\n"), std::string::npos);
  EXPECT_NE(c.find("Content-Type: multipart/report; report-type=delivery-status;"),
            std::string::npos);
  EXPECT_NE(c.find("Reporting-MTA: dns; relay.test\r\n"), std::string::npos);
  EXPECT_NE(c.find("Final-Recipient: rfc822; nobody@example.org\r\nAction: failed\r\n"
                   "Status: 5.1.1\r\nRemote-MTA: dns; smtp.gmail.com\r\n"
                   "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach "
                   "does not exist.\r\n"),
            std::string::npos)
      << c;
  EXPECT_NE(c.find("Content-Type: message/rfc822\r\n\r\n" + original), std::string::npos);
  const std::string end = "\r\n--0123456789abcdef/relay.test--\r\n";
  EXPECT_EQ(c.substr(c.size() - end.size()), end);
}

// The dates are the relay's local time with its offset (common rfc5322_date,
// tested for several zones in tests/common): whatever TZ the test runs under.
TEST(bounce, dates_are_rfc5322_in_local_time) {
  const auto in = sample();
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  const auto& c = b->content;
  EXPECT_NE(c.find("\r\nDate: " + rfc5322_date(1790000100) + "\r\n"), std::string::npos) << c;
  EXPECT_NE(c.find("\r\nArrival-Date: " + rfc5322_date(1790000000) + "\r\n"), std::string::npos)
      << c;
  EXPECT_NE(c.find("\r\nLast-Attempt-Date: " + rfc5322_date(1790000100) + "\r\n"),
            std::string::npos)
      << c;
}

// Up to bounce_quote_limit the original comes back whole; past it, as its
// header alone, and the report says why (RET is a request, RFC 3461 §4.3).
TEST(bounce, a_message_over_the_quote_limit_is_returned_as_its_header) {
  const std::string header = "Subject: big\r\nMessage-ID: <big@example.com>\r\n";
  std::string original = header + "\r\n";
  while (original.size() + 11 <= bounce_quote_limit) original += "body line\r\n";
  struct quote_case {
    std::uint64_t size;  // the message's size as queued
    smtp::dsn_ret ret;
    bool whole;  // message/rfc822 with every octet given
    bool note;   // the report says only the header is attached, and why
  };
  const std::vector<quote_case> cases = {
      {original.size(), smtp::dsn_ret::unspecified, true, false},
      {original.size(), smtp::dsn_ret::full, true, false},
      {bounce_quote_limit + 1, smtp::dsn_ret::full, false, true},
      {bounce_quote_limit + 1, smtp::dsn_ret::unspecified, false, true},
      {35'000'000, smtp::dsn_ret::headers, false, false},
  };
  for (const auto& q : cases) {
    auto in = sample();
    in.original_content = original;
    in.original_size = q.size;
    in.original.params.ret = q.ret;
    const auto b = make_bounce(in);
    ASSERT_TRUE(b.has_value());
    const auto& c = b->content;
    SCOPED_TRACE(std::to_string(q.size) + " ret " + std::to_string(static_cast<int>(q.ret)));
    EXPECT_EQ(c.find("Content-Type: message/rfc822\r\n\r\n" + original) != std::string::npos,
              q.whole);
    EXPECT_EQ(c.find("Content-Type: text/rfc822-headers\r\n\r\n" + header + "\r\n--") !=
                  std::string::npos,
              !q.whole);
    EXPECT_EQ(
        c.find("Only the header of your message is attached: it is " + std::to_string(q.size) +
               " bytes, more than the 1048576 bytes returned "
               "whole.\r\n") != std::string::npos,
        q.note);
  }
}

TEST(bounce, a_header_longer_than_the_copy_read_ends_at_its_last_whole_line) {
  auto in = sample();
  // The first octets of a message whose header goes on past them.
  const std::string read = "Subject: long\r\nX-Long: aaaa\r\nX-Cut: bb";
  in.original_content = read;
  in.original_size = 40'000'000;
  const auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(b->content.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: long\r\n"
                            "X-Long: aaaa\r\n\r\n--"),
            std::string::npos)
      << b->content;
  EXPECT_EQ(b->content.find("X-Cut"), std::string::npos);
}

TEST(bounce, without_the_content_it_says_so_and_has_no_third_part) {
  const auto in = sample();
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  const auto& c = b->content;
  EXPECT_NE(c.find("\r\n\r\nThe message itself is not attached: its content could not be read "
                   "from the queue.\r\n\r\n--0123456789abcdef/relay.test\r\n"),
            std::string::npos)
      << c;
  EXPECT_EQ(c.find("message/rfc822"), std::string::npos) << c;
  EXPECT_EQ(c.find("rfc822-headers"), std::string::npos) << c;
  // The report part ends the message with the closing delimiter.
  EXPECT_TRUE(c.ends_with("\r\n\r\n--0123456789abcdef/relay.test--\r\n")) << c;
}

TEST(bounce, ret_hdrs_returns_only_the_header) {
  auto in = sample();
  in.original.params.ret = smtp::dsn_ret::headers;
  const std::string original = "Subject: secret\r\n\r\nconfidential body\r\n";
  in.original_content = original;
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(b->content.find("Content-Type: text/rfc822-headers\r\n\r\nSubject: secret\r\n"),
            std::string::npos);
  EXPECT_EQ(b->content.find("confidential body"), std::string::npos);
}

TEST(bounce, envid_and_orcpt_are_reported_decoded) {
  auto in = sample();
  in.original.params.envid = "QQ+2B1";
  in.failed[0].rcpt.params.orcpt = "rfc822;nobody+2Btag@example.org";
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(b->content.find("Original-Envelope-Id: QQ+1\r\n"), std::string::npos);
  EXPECT_NE(b->content.find("Original-Recipient: rfc822;nobody+tag@example.org\r\n"),
            std::string::npos);
}

TEST(bounce, xtext_for_controls_and_8bit_stays_encoded_in_the_report) {
  auto in = sample();
  in.original.params.envid = "id+0D+0AX-Injected:+20yes+00+C3+A9+2b";
  in.failed[0].rcpt.params.orcpt = "rfc822;a+0D+0Ab@example.org+zz+4";
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  const auto& c = b->content;
  EXPECT_NE(c.find("Original-Envelope-Id: id+0D+0AX-Injected:+20yes+00+C3+A9+\r\n"),
            std::string::npos)
      << c;
  EXPECT_NE(c.find("Original-Recipient: rfc822;a+0D+0Ab@example.org+zz+4\r\n"), std::string::npos)
      << c;
  EXPECT_EQ(c.find('\0'), std::string::npos);
  EXPECT_EQ(c.find("\r\nX-Injected"), std::string::npos);
  for (std::size_t i = 0; i < c.size(); ++i) {
    if (c[i] == '\n') {
      EXPECT_TRUE(i > 0 && c[i - 1] == '\r') << "bare LF at " << i;
    }
    if (c[i] == '\r') {
      EXPECT_TRUE(i + 1 < c.size() && c[i + 1] == '\n') << "bare CR at " << i;
    }
  }
}

TEST(bounce, decode_xtext_table) {
  EXPECT_EQ(decode_xtext(""), "");
  EXPECT_EQ(decode_xtext("plain"), "plain");
  EXPECT_EQ(decode_xtext("a+2Bb+3Dc"), "a+b=c");
  EXPECT_EQ(decode_xtext("+7e+7F+20+1F+80"), "~+7F+20+1F+80");
  EXPECT_EQ(decode_xtext("end+4"), "end+4");
  EXPECT_EQ(decode_xtext("end+"), "end+");
  EXPECT_EQ(decode_xtext("+G1"), "+G1");
}

TEST(bounce, never_for_a_null_sender) {
  auto in = sample();
  in.original.sender = "";
  EXPECT_FALSE(make_bounce(in).has_value());
}

TEST(bounce, notify_never_or_without_failure_suppresses_it) {
  auto in = sample();
  in.failed[0].rcpt.params.notify.specified = true;
  in.failed[0].rcpt.params.notify.never = true;
  EXPECT_FALSE(make_bounce(in).has_value());
  in.failed[0].rcpt.params.notify.never = false;
  in.failed[0].rcpt.params.notify.delay = true;
  EXPECT_FALSE(make_bounce(in).has_value());
  in.failed[0].rcpt.params.notify.failure = true;
  EXPECT_TRUE(make_bounce(in).has_value());
}

TEST(bounce, relay_reasons_are_not_attributed_to_gmail) {
  auto in = sample();
  in.failed[0].from_upstream = false;
  in.failed[0].status = "4.4.7";
  in.failed[0].diagnostic = "message expired after 120 hours in the queue";
  auto b = make_bounce(in);
  ASSERT_TRUE(b.has_value());
  EXPECT_NE(b->content.find("Status: 4.4.7\r\nDiagnostic-Code: X-Oauth-Relay; message expired"),
            std::string::npos);
  EXPECT_EQ(b->content.find("Remote-MTA"), std::string::npos);
}

}  // namespace
}  // namespace oauth_relay::relay
