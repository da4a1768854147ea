// oauth-relay-sendmail's pure part: sendmail's command line, the lone-dot
// rule, Bcc removal and the headers it adds, byte for byte (the addresses
// themselves: address_test.cpp).
#include "sendmail/message.hpp"

#include <gtest/gtest.h>

#include <sstream>

namespace oauth_relay::sendmail {
namespace {

options parsed(const std::vector<std::string>& args) {
  auto r = parse_arguments(args);
  EXPECT_TRUE(r.value.has_value()) << r.error;
  return r.value.value_or(options{});
}

TEST(sendmail_arguments, the_forms_callers_use) {
  auto php = parsed({"-t", "-i"});  // PHP's default sendmail_path
  EXPECT_TRUE(php.extract_recipients);
  EXPECT_TRUE(php.ignore_dots);
  EXPECT_TRUE(php.recipients.empty());

  auto clustered = parsed({"-ti"});
  EXPECT_TRUE(clustered.extract_recipients);
  EXPECT_TRUE(clustered.ignore_dots);

  auto mutt = parsed({"-oem", "-oi", "--", "a@example.org", "-b@example.org"});
  EXPECT_TRUE(mutt.ignore_dots);
  EXPECT_EQ(mutt.recipients, (std::vector<std::string>{"a@example.org", "-b@example.org"}));

  auto cron = parsed({"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"});
  EXPECT_EQ(cron.full_name, "CronDaemon");
  EXPECT_EQ(cron.recipients, std::vector<std::string>{"root"});

  auto sender = parsed({"-f", "<app@example.com>", "-F", "The App", "-odi", "-bm", "-v",
                        "x@example.org", "y@example.org"});
  EXPECT_EQ(sender.sender, "<app@example.com>");  // as written: checked by prepare()
  EXPECT_EQ(sender.full_name, "The App");
  EXPECT_FALSE(sender.ignore_dots);
  EXPECT_EQ(sender.recipients, (std::vector<std::string>{"x@example.org", "y@example.org"}));

  EXPECT_EQ(parsed({"-fme@example.com", "-t"}).sender, "me@example.com");
  EXPECT_EQ(parsed({"-r", "me@example.com", "-t"}).sender, "me@example.com");
  EXPECT_EQ(parsed({"-f", "<>", "-t"}).sender, "<>");
  EXPECT_EQ(parsed({"-f", "", "-t"}).sender, "");
  // An empty recipient is an address problem (exit 64), not a usage one.
  EXPECT_EQ(parsed({""}).recipients, std::vector<std::string>{""});
  EXPECT_EQ(parsed({"-c", "/tmp/x.yaml", "-t"}).config, "/tmp/x.yaml");
  EXPECT_EQ(parsed({"-t"}).config, "/etc/oauth-relay/config.yaml");
  EXPECT_TRUE(parsed({"--version"}).version);
  EXPECT_TRUE(parsed({"--help"}).help);
}

TEST(sendmail_arguments, refuses_what_it_cannot_do) {
  struct bad_case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const auto& c : std::vector<bad_case>{
           {{}, "no recipients: name them as arguments or use -t to read them from the header"},
           {{"-i"}, "no recipients: name them as arguments or use -t to read them from the header"},
           {{"-q"}, "unknown option -q"},
           {{"-tq"}, "unknown option -q"},
           {{"--verbose", "a@x"}, "unknown option --verbose"},
           {{"-bp"}, "-bp is not supported: oauth-relay-sendmail only reads a message (-bm)"},
           {{"-bs"}, "-bs is not supported: oauth-relay-sendmail only reads a message (-bm)"},
           {{"-t", "-f"}, "option -f needs a value"},
           {{"-", "a@x"}, "bad argument \"-\""},
       }) {
    auto r = parse_arguments(c.args);
    EXPECT_FALSE(r.value.has_value());
    EXPECT_EQ(r.error, c.error);
  }
}

TEST(sendmail_input, a_lone_dot_ends_the_message_unless_i) {
  const std::string input = "Subject: x\n\nfirst\n.\nafter the dot\n";
  std::istringstream plain(input), with_i(input);
  EXPECT_EQ(read_message(plain, false), "Subject: x\n\nfirst\n");
  EXPECT_EQ(read_message(with_i, true), input);
  std::istringstream crlf("a\r\n.\r\nb\r\n");
  EXPECT_EQ(read_message(crlf, false), "a\r\n");
  std::istringstream dots("..\n. \n.x\n");  // only a line that is exactly "." counts
  EXPECT_EQ(read_message(dots, false), "..\n. \n.x\n");
  std::istringstream unterminated("no newline at the end");
  EXPECT_EQ(read_message(unterminated, false), "no newline at the end");
}

TEST(sendmail_input, line_ends_become_crlf_and_dots_are_stuffed) {
  EXPECT_EQ(to_crlf("a\nb\r\nc"), "a\r\nb\r\nc\r\n");
  EXPECT_EQ(to_crlf(""), "");
  EXPECT_EQ(to_crlf("bare\rcr\n"), "bare\rcr\r\n");
  EXPECT_EQ(dot_stuff("a\r\n.\r\n..b\r\nc.d\r\n"), "a\r\n..\r\n...b\r\nc.d\r\n.\r\n");
  EXPECT_EQ(dot_stuff(""), ".\r\n");
}

environment test_env() {
  return {"cron", "relay.example.com", "Mon, 30 Nov 2026 08:00:00 +0000",
          "<1.abc@relay.example.com>"};
}

TEST(sendmail_prepare, t_takes_to_cc_bcc_removes_bcc_and_keeps_everything_else) {
  options o;
  o.extract_recipients = true;
  const std::string message =
      "From: App <app@example.com>\n"
      "To: Alice <alice@example.org>,\n"
      "  bob@example.org\n"
      "Cc: team: carol@example.org;\n"
      "Bcc: secret@example.org,\n"
      "\thidden@example.org\n"
      "Subject: report\n"
      "Date: Sun, 29 Nov 2026 10:00:00 +0000\n"
      "Message-ID: <given@example.com>\n"
      "\n"
      "Bcc: in the body stays\n"
      ".\n";
  auto r = prepare(o, message, test_env());
  ASSERT_TRUE(r.value) << r.error;
  EXPECT_EQ(r.value->recipients,
            (std::vector<std::string>{"alice@example.org", "bob@example.org", "carol@example.org",
                                      "secret@example.org", "hidden@example.org"}));
  EXPECT_EQ(r.value->sender, "cron@relay.example.com");
  EXPECT_EQ(r.value->content,
            "From: App <app@example.com>\r\n"
            "To: Alice <alice@example.org>,\r\n"
            "  bob@example.org\r\n"
            "Cc: team: carol@example.org;\r\n"
            "Subject: report\r\n"
            "Date: Sun, 29 Nov 2026 10:00:00 +0000\r\n"
            "Message-ID: <given@example.com>\r\n"
            "\r\n"
            "Bcc: in the body stays\r\n"
            ".\r\n");
}

TEST(sendmail_prepare, adds_from_date_and_message_id_when_missing) {
  options o;
  o.sender = "app@example.com";
  o.full_name = "Nightly Backup, Host 3";
  o.recipients = {"ops@example.org", "OPS@example.org", "root"};
  auto r = prepare(o, "Subject: done\n\nok\n", test_env());
  ASSERT_TRUE(r.value) << r.error;
  EXPECT_EQ(r.value->sender, "app@example.com");
  EXPECT_EQ(r.value->recipients,
            (std::vector<std::string>{"ops@example.org", "root@relay.example.com"}));
  EXPECT_EQ(r.value->content,
            "Subject: done\r\n"
            "From: \"Nightly Backup, Host 3\" <app@example.com>\r\n"
            "Date: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
            "Message-ID: <1.abc@relay.example.com>\r\n"
            "\r\n"
            "ok\r\n");

  // No header at all: the text is the body, after the added fields.
  o.full_name.reset();
  r = prepare(o, "just text\n", test_env());
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->content,
            "From: app@example.com\r\nDate: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
            "Message-ID: <1.abc@relay.example.com>\r\n\r\njust text\r\n");
}

TEST(sendmail_prepare, null_sender_and_no_recipients) {
  options o;
  o.sender = "";
  o.recipients = {"a@example.org"};
  auto r = prepare(o, "From: x@example.com\nDate: d\nMessage-ID: <m@x>\n\nb\n", test_env());
  ASSERT_TRUE(r.value);
  EXPECT_EQ(r.value->sender, "");
  o.recipients.clear();
  o.extract_recipients = true;
  r = prepare(o, "To: undisclosed-recipients:;\n\nb\n", test_env());
  EXPECT_FALSE(r.value);
  EXPECT_EQ(r.error, "no recipients found in the To:, Cc: or Bcc: fields");
}

TEST(sendmail_prepare, display_names_are_quoted_only_when_needed) {
  EXPECT_EQ(display_name("Cron Daemon"), "Cron Daemon");
  EXPECT_EQ(display_name("Doe, John"), "\"Doe, John\"");
  EXPECT_EQ(display_name("say \"hi\""), "\"say \\\"hi\\\"\"");
  // -F never breaks the From: line it goes into.
  EXPECT_EQ(display_name(std::string("Evil\r\nBcc: x@example.org\0\x7f\tend", 30)),
            "\"EvilBcc: x@example.org\tend\"");
}

}  // namespace
}  // namespace oauth_relay::sendmail
