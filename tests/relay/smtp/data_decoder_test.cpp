// Tests for the DATA decoder: every SMTP smuggling variant, dot-unstuffing,
// line limits, pipelined bytes, and identical results for any chunking.
#include "relay/smtp/data_decoder.hpp"

#include <gtest/gtest.h>

#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "tests/fuzz/data_decoder_reference.hpp"

namespace oauth_relay::smtp {
namespace {

using namespace std::string_literals;

// Everything the decoder reports after a run over some input.
struct outcome {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  std::uint64_t size = 0;
  bool line_too_long = false;
  bool bare = false;
  bool eight_bit = false;
  bool nul = false;

  bool operator==(const outcome&) const = default;
};

void PrintTo(const outcome& o, std::ostream* os) {
  *os << "{out=" << ::testing::PrintToString(o.out) << " consumed=" << o.consumed
      << " done=" << o.done << " size=" << o.size << " too_long=" << o.line_too_long
      << " bare=" << o.bare << " 8bit=" << o.eight_bit << " nul=" << o.nul << "}";
}

// Feeds `input` in chunks of the given sizes (cycled; 0 ends the list) and
// stops at the end of data, as the session does.
outcome decode_chunked(std::string_view input, const std::vector<std::size_t>& chunks,
                       std::size_t max_line = 1000) {
  data_decoder decoder(max_line);
  outcome o;
  std::size_t offset = 0;
  for (std::size_t k = 0; offset < input.size() && !o.done; ++k) {
    const std::size_t length = std::min(chunks[k % chunks.size()], input.size() - offset);
    const data_decoder::step s = decoder.feed(input.substr(offset, length), o.out);
    EXPECT_LE(s.consumed, length);
    if (!s.done) {
      EXPECT_EQ(s.consumed, length) << "a chunk is consumed whole until the end";
    }
    o.consumed += s.consumed;
    o.done = s.done;
    offset += length;
  }
  o.size = decoder.size();
  o.line_too_long = decoder.line_too_long();
  o.bare = decoder.had_bare_line_ending();
  o.eight_bit = decoder.had_8bit();
  o.nul = decoder.had_nul();
  return o;
}

outcome decode_whole(std::string_view input, std::size_t max_line = 1000) {
  return decode_chunked(input, {input.size() + 1}, max_line);
}

// --- smuggling and line endings --------------------------------------------

struct decode_case {
  const char* name;
  std::string input;
  std::string out;
  std::size_t consumed;
  bool done;
  bool bare;
};

void PrintTo(const decode_case& c, std::ostream* os) {
  *os << c.name << " " << ::testing::PrintToString(c.input);
}

class DataDecoderCases : public ::testing::TestWithParam<decode_case> {};

TEST_P(DataDecoderCases, DecodesExactly) {
  const decode_case& c = GetParam();
  const outcome o = decode_whole(c.input);
  EXPECT_EQ(o.out, c.out);
  EXPECT_EQ(o.consumed, c.consumed);
  EXPECT_EQ(o.done, c.done);
  EXPECT_EQ(o.bare, c.bare);
  EXPECT_EQ(o.size, c.out.size());
}

TEST_P(DataDecoderCases, DecodesExactlyOneOctetAtATime) {
  const decode_case& c = GetParam();
  const outcome o = decode_chunked(c.input, {1});
  EXPECT_EQ(o.out, c.out);
  EXPECT_EQ(o.consumed, c.consumed);
  EXPECT_EQ(o.done, c.done);
  EXPECT_EQ(o.bare, c.bare);
}

TEST_P(DataDecoderCases, MatchesReference) {
  const decode_case& c = GetParam();
  const auto r = reference::decode(c.input, 1000);
  EXPECT_EQ(r.out, c.out);
  EXPECT_EQ(r.consumed, c.consumed);
  EXPECT_EQ(r.done, c.done);
}

INSTANTIATE_TEST_SUITE_P(
    Ends, DataDecoderCases,
    ::testing::Values(
        decode_case{"simple", "a\r\n.\r\n", "a\r\n", 6, true, false},
        decode_case{"empty_message", ".\r\n", "", 3, true, false},
        decode_case{"empty_line_only", "\r\n.\r\n", "\r\n", 5, true, false},
        decode_case{"two_lines", "Subject: x\r\n\r\nbody\r\n.\r\n", "Subject: x\r\n\r\nbody\r\n",
                    23, true, false},
        decode_case{"pipelined_after_end", "a\r\n.\r\nQUIT\r\n", "a\r\n", 6, true, false},
        decode_case{"pipelined_mail_after_end", "a\r\n.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@y>\r\n",
                    "a\r\n", 6, true, false},
        decode_case{"second_end_left_over", ".\r\n.\r\n", "", 3, true, false},
        decode_case{"not_ended", "a\r\nb", "a\r\nb", 4, false, false},
        decode_case{"not_ended_dot", "a\r\n.", "a\r\n", 4, false, false},
        decode_case{"not_ended_dot_cr", "a\r\n.\r", "a\r\n", 5, false, false},
        decode_case{"not_ended_cr", "a\r", "a", 2, false, false},
        decode_case{"nothing", "", "", 0, false, false}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Smuggling, DataDecoderCases,
    ::testing::Values(
        // Each "end" below is one that some server once honoured; here it is message text.
        decode_case{"lf_dot_lf", "a\n.\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n\r\nMAIL FROM:<x@y>\r\n",
                    24, true, true},
        decode_case{"cr_dot_cr", "a\r.\rb\r\n.\r\n", "a\r\n\r\nb\r\n", 10, true, true},
        decode_case{"lf_dot_crlf", "a\n.\r\nb\r\n.\r\n", "a\r\n\r\nb\r\n", 11, true, true},
        decode_case{"crlf_dot_lf", "a\r\n.\nb\r\n.\r\n", "a\r\n\r\nb\r\n", 11, true, true},
        decode_case{"crlf_dot_cr", "a\r\n.\rb\r\n.\r\n", "a\r\n\r\nb\r\n", 11, true, true},
        decode_case{"cr_dot_crlf", "a\r.\r\nb\r\n.\r\n", "a\r\n\r\nb\r\n", 11, true, true},
        decode_case{"crlf_dot_cr_crlf", "a\r\n.\r\r\nb\r\n.\r\n", "a\r\n\r\n\r\nb\r\n", 13, true,
                    true},
        decode_case{"crlf_dot_cr_cr", "a\r\n.\r\rb\r\n.\r\n", "a\r\n\r\n\r\nb\r\n", 12, true, true},
        decode_case{"lf_dot_lf_then_real_end", "a\n.\nb\r\nc\r\n.\r\nQUIT\r\n",
                    "a\r\n\r\nb\r\nc\r\n", 13, true, true},
        decode_case{"lf_dot_lf_only", "a\n.\n", "a\r\n\r\n", 4, false, true},
        decode_case{"cr_dot_cr_only", "a\r.\r", "a\r\n", 4, false, true},
        decode_case{"lf_dot_crlf_only", "a\n.\r\n", "a\r\n\r\n", 5, false, true},
        decode_case{"crlf_dot_lf_only", "a\r\n.\n", "a\r\n\r\n", 5, false, true},
        decode_case{"crlf_dot_cr_x", "a\r\n.\rx", "a\r\n\r\nx", 6, false, true},
        decode_case{"cr_dot_crlf_only", "a\r.\r\n", "a\r\n\r\n", 5, false, true},
        decode_case{"start_lf_dot_lf", "\n.\n.\r\n", "\r\n\r\n\r\n", 6, false, true},
        decode_case{"start_lf_dot_crlf", "\n.\r\n", "\r\n\r\n", 4, false, true},
        decode_case{"start_dot_lf", ".\n", "\r\n", 2, false, true},
        decode_case{"start_dot_cr_x", ".\rx\r\n.\r\n", "\r\nx\r\n", 8, true, true},
        decode_case{"start_cr_dot_crlf", "\r.\r\n.\r\n", "\r\n\r\n", 7, true, true},
        decode_case{"cr_cr_lf_then_end", "a\r\r\n.\r\n", "a\r\n\r\n", 7, true, true},
        decode_case{"lf_lf_dot_crlf", "a\n\n.\r\n", "a\r\n\r\n\r\n", 6, false, true},
        decode_case{"lf_crlf_dot_crlf", "a\n\r\n.\r\n", "a\r\n\r\n", 7, true, true},
        decode_case{"bare_lf_body", "a\nb\nc\r\n.\r\n", "a\r\nb\r\nc\r\n", 10, true, true},
        decode_case{"bare_cr_body", "a\rb\rc\r\n.\r\n", "a\r\nb\r\nc\r\n", 10, true, true},
        decode_case{"lf_cr", "a\n\rb\r\n.\r\n", "a\r\n\r\nb\r\n", 9, true, true},
        decode_case{"dot_space_crlf", "a\r\n. \r\n.\r\n", "a\r\n \r\n", 10, true, false},
        decode_case{"nul_dot", "a\r\n.\0\r\n.\r\n"s, "a\r\n\0\r\n"s, 10, true, false}),
    [](const auto& info) { return std::string(info.param.name); });

INSTANTIATE_TEST_SUITE_P(
    Unstuffing, DataDecoderCases,
    ::testing::Values(
        decode_case{"double_dot_line", "a\r\n..\r\n.\r\n", "a\r\n.\r\n", 10, true, false},
        decode_case{"double_dot_text", "..x\r\n.\r\n", ".x\r\n", 8, true, false},
        decode_case{"triple_dot", "...\r\n.\r\n", "..\r\n", 8, true, false},
        decode_case{"single_dot_text", "a\r\n.x\r\n.\r\n", "a\r\nx\r\n", 10, true, false},
        decode_case{"dot_inside_line", "a.b\r\nc.\r\n.\r\n", "a.b\r\nc.\r\n", 12, true, false},
        decode_case{"after_bare_lf", "a\n..x\r\n.\r\n", "a\r\n.x\r\n", 10, true, true},
        decode_case{"after_bare_cr", "a\r..x\r\n.\r\n", "a\r\n.x\r\n", 10, true, true},
        decode_case{"dot_after_bare_lf_is_empty_line", "a\n.\r\n.\r\n", "a\r\n\r\n", 8, true, true},
        decode_case{"dot_dot_crlf_after_bare", "a\n..\r\n.\r\n", "a\r\n.\r\n", 9, true, true}),
    [](const auto& info) { return std::string(info.param.name); });

// --- feed contract -----------------------------------------------------------

TEST(DataDecoder, LeavesPipelinedBytesInTheSameChunk) {
  data_decoder decoder;
  std::string out;
  const std::string input = "line\r\n.\r\nRSET\r\n";
  const auto s = decoder.feed(input, out);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(input.substr(s.consumed), "RSET\r\n");
  EXPECT_EQ(out, "line\r\n");
}

TEST(DataDecoder, FeedAfterDoneConsumesNothing) {
  data_decoder decoder;
  std::string out;
  ASSERT_TRUE(decoder.feed(".\r\n", out).done);
  const auto s = decoder.feed("MAIL FROM:<a@b>\r\n", out);
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.consumed, 0u);
  EXPECT_EQ(out, "");
  EXPECT_EQ(decoder.size(), 0u);
}

TEST(DataDecoder, CrAtChunkEndIsDecidedByTheNextChunk) {
  struct split {
    std::vector<std::string> chunks;
    std::string out;
    bool done;
  };
  const std::vector<split> splits = {
      {{"a\r", "\n.\r\n"}, "a\r\n", true},            // CR | LF: one real line ending
      {{"a\r", "b\r\n.\r\n"}, "a\r\nb\r\n", true},    // CR | b: bare CR, written once
      {{"a\r", "\r", "\n.\r\n"}, "a\r\n\r\n", true},  // CR | CR | LF
      {{"a\r\n.\r", "\n"}, "a\r\n", true},            // the end marker split at its CR
      {{"a\r\n.", "\r", "\n"}, "a\r\n", true},
      {{"a\r\n.\r", "x\r\n.\r\n"}, "a\r\n\r\nx\r\n", true},
      {{"a\r", ".\r", "\n.\r\n"}, "a\r\n\r\n", true},
  };
  for (const split& s : splits) {
    data_decoder decoder;
    std::string out;
    bool done = false;
    for (const std::string& chunk : s.chunks) {
      ASSERT_FALSE(done);
      const auto step = decoder.feed(chunk, out);
      EXPECT_EQ(step.consumed, chunk.size());
      done = step.done;
    }
    EXPECT_EQ(out, s.out) << ::testing::PrintToString(s.chunks);
    EXPECT_EQ(done, s.done) << ::testing::PrintToString(s.chunks);
  }
}

TEST(DataDecoder, AppendsToExistingOutput) {
  data_decoder decoder;
  std::string out = "Received: x\r\n";
  decoder.feed("a\r\n.\r\n", out);
  EXPECT_EQ(out, "Received: x\r\na\r\n");
  EXPECT_EQ(decoder.size(), 3u);
}

// --- flags and size ----------------------------------------------------------

struct flag_case {
  const char* name;
  std::string input;
  bool eight_bit;
  bool nul;
  bool bare;
};

void PrintTo(const flag_case& c, std::ostream* os) {
  *os << c.name;
}

class DataDecoderFlags : public ::testing::TestWithParam<flag_case> {};

TEST_P(DataDecoderFlags, ReportsContent) {
  const flag_case& c = GetParam();
  for (const std::vector<std::size_t>& chunks :
       {std::vector<std::size_t>{c.input.size()}, std::vector<std::size_t>{1}}) {
    const outcome o = decode_chunked(c.input, chunks);
    EXPECT_TRUE(o.done);
    EXPECT_EQ(o.eight_bit, c.eight_bit);
    EXPECT_EQ(o.nul, c.nul);
    EXPECT_EQ(o.bare, c.bare);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DataDecoderFlags,
    ::testing::Values(
        flag_case{"plain", "hello world\r\n.\r\n", false, false, false},
        flag_case{"eight_bit", "h\xC3\xA9llo\r\n.\r\n", true, false, false},
        flag_case{"eight_bit_late_in_long_line", std::string(37, 'x') + "\xFF" + "\r\n.\r\n", true,
                  false, false},
        flag_case{"eight_bit_at_line_start", "\x80\r\n.\r\n", true, false, false},
        flag_case{"nul", "a\0b\r\n.\r\n"s, false, true, false},
        flag_case{"nul_late_in_long_line", std::string(41, 'x') + "\0"s + "\r\n.\r\n", false, true,
                  false},
        flag_case{"both", std::string(16, 'x') + "\0\x90"s + "\r\n.\r\n", true, true, false},
        flag_case{"eight_bit_in_pipelined_bytes_only", "a\r\n.\r\n\xFF\0"s, false, false, false},
        flag_case{"bare_lf", "a\nb\r\n.\r\n", false, false, true},
        flag_case{"bare_cr", "a\rb\r\n.\r\n", false, false, true},
        flag_case{"dot_line_is_not_bare", "a\r\n..\r\n.\r\n", false, false, false}),
    [](const auto& info) { return std::string(info.param.name); });

// --- line length -------------------------------------------------------------

struct length_case {
  const char* name;
  std::string input;
  std::size_t max_line;
  bool too_long;
};

void PrintTo(const length_case& c, std::ostream* os) {
  *os << c.name;
}

class DataDecoderLineLength : public ::testing::TestWithParam<length_case> {};

TEST_P(DataDecoderLineLength, FlagsLongLinesAndDecodesToTheEnd) {
  const length_case& c = GetParam();
  const auto r = reference::decode(c.input, c.max_line);
  ASSERT_TRUE(r.done);
  EXPECT_EQ(r.line_too_long, c.too_long) << "reference";
  for (const std::vector<std::size_t>& chunks :
       {std::vector<std::size_t>{c.input.size()}, std::vector<std::size_t>{1},
        std::vector<std::size_t>{7}, std::vector<std::size_t>{500, 499, 3}}) {
    const outcome o = decode_chunked(c.input, chunks, c.max_line);
    EXPECT_EQ(o.line_too_long, c.too_long) << ::testing::PrintToString(chunks);
    EXPECT_TRUE(o.done);
    EXPECT_EQ(o.consumed, c.input.size());
    EXPECT_EQ(o.out, r.out);
  }
}

std::string line(std::size_t octets) {
  return std::string(octets, 'x');
}

INSTANTIATE_TEST_SUITE_P(
    Cases, DataDecoderLineLength,
    ::testing::Values(
        length_case{"crlf_1000", line(998) + "\r\n.\r\n", 1000, false},
        length_case{"crlf_1001", line(999) + "\r\n.\r\n", 1000, true},
        length_case{"second_line_1001", "ok\r\n" + line(999) + "\r\nok\r\n.\r\n", 1000, true},
        length_case{"many_lines_1000", line(998) + "\r\n" + line(998) + "\r\n.\r\n", 1000, false},
        length_case{"stuffed_dot_not_counted", "." + line(998) + "\r\n.\r\n", 1000, false},
        length_case{"stuffed_dot_1001", "." + line(999) + "\r\n.\r\n", 1000, true},
        length_case{"bare_lf_1000", line(998) + "\n.\r\n.\r\n", 1000, false},
        length_case{"bare_lf_1001", line(999) + "\n\r\n.\r\n", 1000, true},
        length_case{"bare_cr_1001", line(999) + "\rx\r\n.\r\n", 1000, true},
        length_case{"empty_message", ".\r\n", 1000, false},
        length_case{"small_limit_ok", "12345678\r\n.\r\n", 10, false},
        length_case{"small_limit_over", "123456789\r\n.\r\n", 10, true},
        length_case{"huge_line", line(100000) + "\r\n.\r\n", 1000, true}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DataDecoderLineLength, KeepsDecodingAfterALongLine) {
  const std::string input = line(2000) + "\r\nnext\r\n.\r\nQUIT\r\n";
  const outcome o = decode_chunked(input, {300});
  EXPECT_TRUE(o.line_too_long);
  EXPECT_TRUE(o.done);
  EXPECT_EQ(o.out, line(2000) + "\r\nnext\r\n");
  EXPECT_EQ(o.consumed, input.size() - 6);
  EXPECT_EQ(o.size, 2008u);
}

// --- any chunking gives the same result ----------------------------------------

std::vector<std::string> property_inputs() {
  std::vector<std::string> inputs = {
      "a\r\n.\r\n",
      ".\r\n",
      "a\n.\nMAIL FROM:<x@y>\r\n.\r\nQUIT\r\n",
      "a\r.\rb\r\n.\r\n",
      "a\r\n.\r\r\nb\r\n.\r\nRSET\r\n",
      "a\r\n.\rb\r\n.\r\n",
      "..x\r\n\r\n.x\r\n...\r\n.\r\n",
      "\r\r\r\n\n\n\r\r.\r.\n.\r\n.\r\n",
      line(1500) + "\n" + line(998) + "\r\n.\r\nDATA\r\n",
      "h\xC3\xA9\0llo\r\n.\r\n"s,
      "not ended\r\n.",
      "not ended\r",
  };
  // Random streams over the octets that matter, some with an end in the middle.
  std::mt19937 random(20240601);
  const std::string alphabet = "\r\n.ab\x80"s + '\0';
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const std::size_t length = random() % 80;
    for (std::size_t k = 0; k < length; ++k) s += alphabet[random() % alphabet.size()];
    if (i % 2 == 0) s += "\r\n.\r\nNEXT";
    inputs.push_back(s);
  }
  return inputs;
}

TEST(DataDecoderChunking, EveryChunkingMatchesWholeAndReference) {
  std::mt19937 random(7);
  for (const std::string& input : property_inputs()) {
    const std::size_t max_line = 40;
    const outcome whole = decode_whole(input, max_line);
    const auto r = reference::decode(input, max_line);
    const outcome expected{r.out,           r.consumed,         r.done,      r.out.size(),
                           r.line_too_long, r.bare_line_ending, r.eight_bit, r.nul};
    ASSERT_EQ(whole, expected) << ::testing::PrintToString(input);
    std::vector<std::vector<std::size_t>> chunkings = {{1}, {2}, {3}, {1, 2}, {5, 1}};
    for (int k = 0; k < 20; ++k) {
      std::vector<std::size_t> sizes;
      for (int j = 0; j < 8; ++j) sizes.push_back(1 + random() % 16);
      chunkings.push_back(sizes);
    }
    for (const auto& chunks : chunkings) {
      ASSERT_EQ(decode_chunked(input, chunks, max_line), whole)
          << ::testing::PrintToString(input) << " chunks " << ::testing::PrintToString(chunks);
    }
  }
}

TEST(DataDecoderChunking, EverySplitPointOfALargeMessage) {
  std::string input;
  for (int i = 0; i < 50; ++i) input += "Line " + std::to_string(i) + " of the body\r\n";
  input += ".leading dot\r\n\n.\n\r.\r\r\n.\r\r\n" + line(1200) + "\r\n.\r\nQUIT\r\n";
  const outcome whole = decode_whole(input);
  ASSERT_TRUE(whole.done);
  ASSERT_TRUE(whole.line_too_long);
  for (std::size_t split = 0; split <= input.size(); ++split) {
    ASSERT_EQ(decode_chunked(input, {split, input.size()}), whole) << "split at " << split;
  }
}

}  // namespace
}  // namespace oauth_relay::smtp
