// The header completion as a table: a message as the DATA decoder puts it
// out and the exact message stored, the same whole, octet by octet and in
// uneven pieces.
#include "relay/smtp/header_completion.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace oauth_relay::smtp {
namespace {

using namespace std::string_literals;

const submission_fields fields{"Tue, 1 Dec 2026 18:00:00 +0000", "<id.1@relay.test>",
                               "root@relay.test"};
const std::string date = "Date: Tue, 1 Dec 2026 18:00:00 +0000\r\n";
const std::string message_id = "Message-ID: <id.1@relay.test>\r\n";
const std::string from = "From: root@relay.test\r\n";
const std::string all = date + message_id + from;

struct row {
  std::string name;
  std::string in;
  std::string out;
  unsigned added;
};

constexpr unsigned D = header_completion::date;
constexpr unsigned M = header_completion::message_id;
constexpr unsigned F = header_completion::from;

const std::string complete =
    "From: a@example.com\r\nDate: Mon, 30 Nov 2026 10:00:00 +0100\r\n"
    "Message-ID: <x@example.com>\r\nSubject: hi\r\n\r\nbody\r\n";

const std::vector<row> rows = {
    {"complete_is_unchanged", complete, complete, 0},
    {"none_of_the_three", "Subject: hi\r\n\r\nbody\r\n", "Subject: hi\r\n" + all + "\r\nbody\r\n",
     D | M | F},
    {"only_date_missing", "From: a@x\r\nMessage-ID: <m@x>\r\n\r\nb\r\n",
     "From: a@x\r\nMessage-ID: <m@x>\r\n" + date + "\r\nb\r\n", D},
    {"names_are_case_insensitive", "DATE: d\r\nmessage-ID: <m@x>\r\nfRoM: a@x\r\n\r\nb\r\n",
     "DATE: d\r\nmessage-ID: <m@x>\r\nfRoM: a@x\r\n\r\nb\r\n", 0},
    {"obsolete_space_before_colon", "Date : d\r\nFrom\t: a@x\r\nMessage-ID  :<m@x>\r\n\r\n",
     "Date : d\r\nFrom\t: a@x\r\nMessage-ID  :<m@x>\r\n\r\n", 0},
    {"folded_lines_are_not_fields",
     "Subject: a\r\n Date: d\r\n\tFrom: a@x\r\nMessage-ID:\r\n <m@x>\r\n\r\n",
     "Subject: a\r\n Date: d\r\n\tFrom: a@x\r\nMessage-ID:\r\n <m@x>\r\n" + date + from + "\r\n",
     D | F},
    {"similar_names_do_not_count",
     "Dates: d\r\nFrom-x: a\r\nResent-Date: d\r\nMessage-IDs: m\r\nX-From: f\r\n\r\n",
     "Dates: d\r\nFrom-x: a\r\nResent-Date: d\r\nMessage-IDs: m\r\nX-From: f\r\n" + all + "\r\n",
     D | M | F},
    {"fields_in_the_body_do_not_count", "Subject: s\r\n\r\nDate: d\r\nFrom: f\r\n",
     "Subject: s\r\n" + all + "\r\nDate: d\r\nFrom: f\r\n", D | M | F},
    {"header_without_body", "Subject: s\r\n", "Subject: s\r\n" + all, D | M | F},
    {"empty_message", "", all, D | M | F},
    {"only_an_empty_line", "\r\n", all + "\r\n", D | M | F},
    {"body_without_header", "hello world\r\n", all + "\r\nhello world\r\n", D | M | F},
    {"body_line_after_fields_gets_a_separator", "Subject: s\r\nhello world\r\nmore\r\n",
     "Subject: s\r\n" + all + "\r\nhello world\r\nmore\r\n", D | M | F},
    {"complete_header_then_body_line_is_unchanged",
     "Date: d\r\nFrom: f\r\nMessage-ID: m\r\nno separator\r\n",
     "Date: d\r\nFrom: f\r\nMessage-ID: m\r\nno separator\r\n", 0},
    {"mbox_from_line_is_a_body_line", "From root Tue Dec  1 18:00:00 2026\r\nSubject: s\r\n",
     all + "\r\nFrom root Tue Dec  1 18:00:00 2026\r\nSubject: s\r\n", D | M | F},
    {"first_line_indented_is_a_body_line", " indented\r\n", all + "\r\n indented\r\n", D | M | F},
    {"colon_first_is_a_body_line", ":x\r\n", all + "\r\n:x\r\n", D | M | F},
    {"eight_bit_name_is_a_body_line", "Subj\xc3\xa9: x\r\n", all + "\r\nSubj\xc3\xa9: x\r\n",
     D | M | F},
    {"bare_lf_lines", "Subject: s\n\nb\n", "Subject: s\n" + all + "\nb\n", D | M | F},
    {"bare_cr_at_line_start_is_a_body_line", "Subject: s\r\n\rx\r\n",
     "Subject: s\r\n" + all + "\r\n\rx\r\n", D | M | F},
    {"last_line_without_line_end", "Subject: s", "Subject: s\r\n" + all, D | M | F},
    {"last_line_without_line_end_complete", "Date: d\r\nFrom: f\r\nMessage-ID: m",
     "Date: d\r\nFrom: f\r\nMessage-ID: m", 0},
    {"unfinished_name_at_the_end", "Subject: s\r\nSubj", "Subject: s\r\n" + all + "\r\nSubj",
     D | M | F},
    {"lone_cr_at_the_end", "Subject: s\r\n\r", "Subject: s\r\n" + all + "\r\n\r", D | M | F},
    {"name_at_the_bound_is_a_field", std::string(max_field_name, 'X') + ": v\r\n\r\n",
     std::string(max_field_name, 'X') + ": v\r\n" + all + "\r\n", D | M | F},
    {"name_over_the_bound_is_a_body_line",
     "Date: d\r\n" + std::string(max_field_name + 1, 'X') + ": v\r\n",
     "Date: d\r\n" + message_id + from + "\r\n" + std::string(max_field_name + 1, 'X') + ": v\r\n",
     M | F},
};

struct result {
  std::string out;
  unsigned added = 0;
};

// Fed in pieces of the given sizes, cycled.
result run(const std::string& in, const std::vector<std::size_t>& pieces) {
  header_completion h(fields);
  result r;
  std::size_t at = 0;
  for (std::size_t k = 0; at < in.size(); ++k) {
    const std::size_t n = std::min(pieces[k % pieces.size()], in.size() - at);
    h.feed(std::string_view(in).substr(at, n), r.out);
    at += n;
  }
  h.finish(r.out);
  r.added = h.added();
  // What was added is exactly where it says, and the rest is the input.
  std::string rest = r.out;
  rest.erase(h.inserted_at(), h.inserted_size());
  EXPECT_EQ(rest, in);
  EXPECT_EQ(h.inserted_size() == 0, h.added() == 0);
  return r;
}

TEST(header_completion, table) {
  const std::vector<std::vector<std::size_t>> chunkings = {
      {1u << 30}, {1}, {2}, {3, 1, 7}, {5, 11, 2, 64}};
  for (const auto& r : rows) {
    for (const auto& chunks : chunkings) {
      const auto got = run(r.in, chunks);
      EXPECT_EQ(got.out, r.out) << r.name << " in pieces of " << chunks.front();
      EXPECT_EQ(got.added, r.added) << r.name;
    }
  }
}

TEST(header_completion, passes_the_body_through_once_the_header_ended) {
  header_completion h(fields);
  std::string out;
  h.feed("Subject: s\r\n", out);
  EXPECT_FALSE(h.passing_through());
  h.feed("\r\nbody", out);
  EXPECT_TRUE(h.passing_through());
  EXPECT_EQ(out, "Subject: s\r\n" + all + "\r\nbody");
  h.finish(out);
  EXPECT_EQ(out, "Subject: s\r\n" + all + "\r\nbody");
}

TEST(header_completion, a_header_of_many_megabytes_is_streamed_and_completed) {
  // Far more header than any bound: nothing is held back but a line start.
  std::string header;
  for (int i = 0; header.size() < 4 * 1024 * 1024; ++i) {
    header += "X-Trace-" + std::to_string(i) + ": " + std::string(200, 'v') + "\r\n";
  }
  header += "Date: d\r\nFrom: f\r\n";
  header_completion h(fields);
  std::string out;
  std::size_t longest_hold = 0;
  for (std::size_t at = 0; at < header.size(); at += 4096) {
    const auto piece = std::string_view(header).substr(at, 4096);
    h.feed(piece, out);
    // Nothing is inserted before the header ends: the output is the input less what is held.
    ASSERT_LE(out.size(), at + piece.size());
    longest_hold = std::max(longest_hold, at + piece.size() - out.size());
  }
  h.feed("\r\nbody\r\n", out);
  h.finish(out);
  EXPECT_EQ(out, header + message_id + "\r\nbody\r\n");
  EXPECT_EQ(h.added(), header_completion::message_id);
  EXPECT_LE(longest_hold, max_field_name);
}

}  // namespace
}  // namespace oauth_relay::smtp
