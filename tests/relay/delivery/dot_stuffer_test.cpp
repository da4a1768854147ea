// The outbound dot-stuffing: a table of contents and the exact bytes sent,
// the same bytes for every way of cutting the content into pieces (a "." at
// the start of a piece, a piece ending between CR and LF), and the DATA
// decoder reading back exactly the content it was given.
#include "relay/delivery/dot_stuffer.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "relay/smtp/data_decoder.hpp"

namespace oauth_relay::relay {
namespace {

// The bytes sent for `content` fed in pieces cut at `cuts` (ascending offsets).
std::string stuffed(std::string_view content, const std::vector<std::size_t>& cuts = {}) {
  dot_stuffer stuffer;
  std::string out;
  std::size_t from = 0;
  for (std::size_t cut : cuts) {
    stuffer.feed(content.substr(from, cut - from), out);
    from = cut;
  }
  stuffer.feed(content.substr(from), out);
  stuffer.finish(out);
  return out;
}

struct stuffing_case {
  std::string content;
  std::string sent;  // what goes on the wire after DATA's 354
};

TEST(dot_stuffer, the_bytes_sent_for_each_content) {
  const std::vector<stuffing_case> cases = {
      {"", ".\r\n"},
      {"a\r\n", "a\r\n.\r\n"},
      {".\r\n", "..\r\n.\r\n"},
      {"..\r\n", "...\r\n.\r\n"},
      {"a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"},
      {"a.b\r\n. \r\n", "a.b\r\n.. \r\n.\r\n"},
      {"no end", "no end\r\n.\r\n"},
      {".no end", "..no end\r\n.\r\n"},
      {"x\r", "x\r\r\n.\r\n"},
      {"\r\n.\r\n", "\r\n..\r\n.\r\n"},
      {"a\r\n\r\n.\r\n.\r\n", "a\r\n\r\n..\r\n..\r\n.\r\n"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(stuffed(c.content), c.sent) << ::testing::PrintToString(c.content);
  }
}

TEST(dot_stuffer, every_single_cut_gives_the_same_bytes) {
  const std::vector<std::string> contents = {
      ".a\r\n.\r\n..\r\nb.\r\n.", "x\r\n.\r\n", "\r\n\r\n.\r\n", "abc\r", ".\r\n.\r\n.\r\n",
  };
  for (const auto& content : contents) {
    const std::string whole = stuffed(content);
    for (std::size_t cut = 0; cut <= content.size(); ++cut) {
      EXPECT_EQ(stuffed(content, {cut}), whole)
          << ::testing::PrintToString(content) << " cut at " << cut;
    }
  }
}

TEST(dot_stuffer, every_pair_of_cuts_gives_the_same_bytes) {
  // Pieces of one octet too: a piece that is only "." or only "\n".
  const std::string content = "a\r\n.\r\n.b\r\n\r\n..c";
  const std::string whole = stuffed(content);
  for (std::size_t first = 0; first <= content.size(); ++first) {
    for (std::size_t second = first; second <= content.size(); ++second) {
      EXPECT_EQ(stuffed(content, {first, second}), whole) << first << "," << second;
    }
  }
}

TEST(dot_stuffer, a_piece_ending_in_cr_before_the_lf_still_counts_as_crlf_at_the_end) {
  // The content ends "\r" | "\n": no second CR LF before the final dot.
  EXPECT_EQ(stuffed("end\r\n", {4}), "end\r\n.\r\n");
  EXPECT_EQ(stuffed("end\r\n", {3, 4}), "end\r\n.\r\n");
  EXPECT_EQ(stuffed("\r\n", {1}), "\r\n.\r\n");
}

TEST(dot_stuffer, the_data_decoder_reads_back_the_content_for_any_pieces) {
  std::mt19937 random(12);  // fixed: the same contents on every run
  const std::vector<std::string> lines = {".", "..", ".x", "x.", "", "plain", "\xc3\xa9t\xc3\xa9"};
  for (int round = 0; round < 200; ++round) {
    std::string content;
    const int count = 1 + static_cast<int>(random() % 12);
    for (int i = 0; i < count; ++i) content += lines[random() % lines.size()] + "\r\n";
    std::vector<std::size_t> cuts;
    for (std::size_t at = random() % 7; at < content.size(); at += 1 + random() % 7) {
      cuts.push_back(at);
    }
    const std::string wire = stuffed(content, cuts);
    smtp::data_decoder decoder;
    std::string decoded;
    const auto step = decoder.feed(wire, decoded);
    EXPECT_TRUE(step.done) << ::testing::PrintToString(wire);
    EXPECT_EQ(step.consumed, wire.size());
    EXPECT_EQ(decoded, content) << ::testing::PrintToString(wire);
  }
}

}  // namespace
}  // namespace oauth_relay::relay
