// message_content: pieces of at most content_chunk octets from memory or a
// file, the 8-bit flag and the final CR LF, and a file that is gone, has
// another size, or shrinks while it is read (lost, never a short message).
#include "relay/spool/content.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace oauth_relay::relay {
namespace {

// Every piece, in order, until the end; stops at a failure (kept in `failed`).
std::vector<std::string> pieces_of(message_content& c,
                                   std::optional<spool_failure>* failed = nullptr) {
  std::vector<std::string> out;
  for (;;) {
    auto piece = c.next();
    if (!piece) {
      if (failed) *failed = piece.error();
      return out;
    }
    if (piece->empty()) return out;
    out.emplace_back(*piece);
  }
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

// 0..255 repeated: every octet value, 8-bit included.
std::string pattern(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>(i % 251);
  return out;
}

class content_file : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("content-test-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write(const std::string& bytes) {
    const auto path = dir_ / "m1";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  std::filesystem::path dir_;
};

TEST(has_8bit, finds_a_high_octet_anywhere) {
  EXPECT_FALSE(has_8bit(""));
  EXPECT_FALSE(has_8bit(std::string(1000, 'a')));
  for (std::size_t at : {0u, 255u, 256u, 257u, 999u}) {
    std::string s(1000, 'a');
    s[at] = '\x80';
    EXPECT_TRUE(has_8bit(s)) << at;
  }
}

TEST(message_content, memory_comes_in_pieces_of_content_chunk) {
  const std::string bytes = pattern(2 * content_chunk + 10) + "\r\n";
  message_content c(bytes, true);
  EXPECT_EQ(c.size(), bytes.size());
  EXPECT_TRUE(c.eight_bit());
  EXPECT_TRUE(c.ends_with_crlf());
  const auto pieces = pieces_of(c);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].size(), content_chunk);
  EXPECT_EQ(pieces[1].size(), content_chunk);
  EXPECT_EQ(pieces[2].size(), 12u);
  EXPECT_EQ(joined(pieces), bytes);
  EXPECT_TRUE(c.next().value().empty());  // and stays at the end

  c.rewind();
  EXPECT_EQ(joined(pieces_of(c)), bytes);
  EXPECT_FALSE(message_content("x\r", false).ends_with_crlf());
  message_content empty;
  EXPECT_TRUE(pieces_of(empty).empty());
}

TEST(message_content, read_prefix_stops_at_the_limit_and_rewinds) {
  const std::string bytes = pattern(3 * content_chunk);
  message_content c(bytes, true);
  EXPECT_EQ(c.read_prefix(content_chunk + 1).value(), bytes.substr(0, content_chunk + 1));
  EXPECT_EQ(c.read_prefix(10 * content_chunk).value(), bytes);
  EXPECT_EQ(joined(pieces_of(c)), bytes);
}

TEST_F(content_file, a_file_comes_byte_for_byte_in_pieces) {
  const std::string bytes = pattern(2 * content_chunk - 1) + "\r\n";
  auto c = message_content::open_file(write(bytes), "m1", bytes.size(), false);
  ASSERT_TRUE(c) << c.error().detail;
  EXPECT_FALSE(c->eight_bit());  // the stored flag is believed
  EXPECT_TRUE(c->ends_with_crlf());
  const auto pieces = pieces_of(*c);
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[1].size(), content_chunk);
  EXPECT_EQ(pieces[2].size(), 1u);
  EXPECT_EQ(joined(pieces), bytes);
  EXPECT_EQ(c->read_prefix(5).value(), bytes.substr(0, 5));

  // Moved, it reads on from where it was.
  c->rewind();
  ASSERT_EQ(c->next().value().size(), content_chunk);
  message_content moved = std::move(*c);
  EXPECT_EQ(joined(pieces_of(moved)), bytes.substr(content_chunk));
}

TEST_F(content_file, without_a_stored_flag_the_file_is_read_for_8bit_octets) {
  std::string seven(2 * content_chunk, 'a');
  auto plain = message_content::open_file(write(seven), "m1", seven.size(), std::nullopt);
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->eight_bit());
  EXPECT_FALSE(plain->ends_with_crlf());
  EXPECT_EQ(joined(pieces_of(*plain)), seven);  // from the first octet after the scan

  std::string eight = seven;
  eight[content_chunk + 3] = '\xe9';
  auto marked = message_content::open_file(write(eight), "m1", eight.size(), std::nullopt);
  ASSERT_TRUE(marked);
  EXPECT_TRUE(marked->eight_bit());
  EXPECT_EQ(joined(pieces_of(*marked)), eight);
}

TEST_F(content_file, a_missing_file_or_one_of_another_size_is_lost) {
  auto missing = message_content::open_file(dir_ / "gone", "m1", 10, false);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, spool_errc::lost);
  EXPECT_EQ(missing.error().detail,
            "message m1: cannot read " + (dir_ / "gone").string() + ": No such file or directory");

  const auto path = write("0123456789");
  auto longer = message_content::open_file(path, "m1", 9, false);
  ASSERT_FALSE(longer);
  EXPECT_EQ(longer.error().code, spool_errc::lost);
  EXPECT_EQ(longer.error().detail,
            "message m1: " + path.string() + " holds 10 bytes, not the 9 that were stored");
}

TEST_F(content_file, a_file_that_shrinks_while_it_is_read_is_lost) {
  const std::string bytes = pattern(3 * content_chunk);
  const auto path = write(bytes);
  auto c = message_content::open_file(path, "m1", bytes.size(), true);
  ASSERT_TRUE(c);
  ASSERT_EQ(c->next().value().size(), content_chunk);
  std::filesystem::resize_file(path, content_chunk + 100);
  std::optional<spool_failure> failed;
  EXPECT_TRUE(pieces_of(*c, &failed).empty());
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->code, spool_errc::lost);
  EXPECT_EQ(failed->detail, "message m1: " + path.string() + " holds fewer than the " +
                                std::to_string(bytes.size()) + " bytes that were stored");
}

TEST_F(content_file, an_unlinked_file_still_reads_to_its_end) {
  // A message deleted by the administrator while it is sent: its open file
  // is read to the end, so the transaction is not cut short.
  const std::string bytes = pattern(2 * content_chunk);
  const auto path = write(bytes);
  auto c = message_content::open_file(path, "m1", bytes.size(), true);
  ASSERT_TRUE(c);
  std::filesystem::remove(path);
  EXPECT_EQ(joined(pieces_of(*c)), bytes);
}

}  // namespace
}  // namespace oauth_relay::relay
