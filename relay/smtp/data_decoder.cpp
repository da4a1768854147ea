// DATA-phase decoder: a byte state machine for line starts and line endings,
// with spans of ordinary octets copied whole (memchr) between them.
#include "relay/smtp/data_decoder.hpp"

#include <algorithm>
#include <cstring>

namespace oauth_relay::smtp {

// The decoder stands at one of these points between two octets. Only a line
// begun by a real CR LF (after_crlf_) can be the end-of-data line.
enum class data_decoder::state : std::uint8_t {
  line_start,  // at the first octet of a line
  in_line,     // inside a line, after its first octet
  cr,          // after a CR inside or at the start of a line: CR LF or a bare CR?
  dot,         // after "." at the start of a line begun by CR LF
  dot_cr,      // after "." CR at the start of a line begun by CR LF: the end, if LF follows
  done,        // the end-of-data line has been consumed
};

namespace {

// Sets `eight_bit` and `nul` for the octets of [p, p + n), a word at a time.
void scan_octets(const char* p, std::size_t n, bool& eight_bit, bool& nul) {
  constexpr std::uint64_t ones = 0x0101010101010101ULL;
  constexpr std::uint64_t highs = 0x8080808080808080ULL;
  std::size_t i = 0;
  for (; i + 8 <= n && !(eight_bit && nul); i += 8) {
    std::uint64_t word;
    std::memcpy(&word, p + i, sizeof word);
    if (word & highs) eight_bit = true;
    if ((word - ones) & ~word & highs) nul = true;  // some octet of `word` is zero
  }
  for (; i < n && !(eight_bit && nul); ++i) {
    const auto c = static_cast<unsigned char>(p[i]);
    if (c > 0x7f) eight_bit = true;
    if (c == 0) nul = true;
  }
}

}  // namespace

data_decoder::data_decoder(std::size_t max_line) : max_line_(max_line), state_(state::line_start) {}

data_decoder::step data_decoder::feed(std::string_view input, std::string& out) {
  if (state_ == state::done) return {0, true};
  const char* const data = input.data();
  const std::size_t n = input.size();
  std::size_t pos = 0;
  // Positions of the next CR and LF at or after `pos` (n: none left), found
  // lazily so each octet is scanned by memchr at most once per feed.
  constexpr std::size_t unknown = static_cast<std::size_t>(-1);
  std::size_t next_cr = unknown;
  std::size_t next_lf = unknown;
  auto next = [&](char c, std::size_t& cached) {
    if (cached == unknown || cached < pos) {
      const void* hit = std::memchr(data + pos, c, n - pos);
      cached = hit ? static_cast<std::size_t>(static_cast<const char*>(hit) - data) : n;
    }
    return cached;
  };
  auto end_line = [&](bool bare) {
    out += "\r\n";
    size_ += 2;
    if (line_length_ + 2 > max_line_) line_too_long_ = true;
    line_length_ = 0;
    if (bare) bare_line_ending_ = true;
    after_crlf_ = !bare;
    state_ = state::line_start;
  };

  while (pos < n) {
    const char c = data[pos];
    switch (state_) {
      case state::line_start:
        state_ = state::in_line;
        if (c == '.') {
          ++pos;  // the stuffed dot; it may also start the end-of-data line
          if (after_crlf_) state_ = state::dot;
        }
        break;
      case state::in_line: {
        const std::size_t end = std::min(next('\r', next_cr), next('\n', next_lf));
        if (end > pos) {
          const std::size_t length = end - pos;
          out.append(data + pos, length);
          if (!(eight_bit_ && nul_)) scan_octets(data + pos, length, eight_bit_, nul_);
          size_ += length;
          line_length_ += length;
          if (line_length_ + 2 > max_line_) line_too_long_ = true;
          pos = end;
        } else {
          ++pos;
          if (c == '\n') {
            end_line(true);
          } else {
            state_ = state::cr;
          }
        }
        break;
      }
      case state::cr:
        if (c == '\n') {
          ++pos;
          end_line(false);
        } else {
          end_line(true);  // a bare CR; `c` starts the next line
        }
        break;
      case state::dot:
        if (c == '\r') {
          ++pos;
          state_ = state::dot_cr;
        } else if (c == '\n') {
          ++pos;
          end_line(true);  // "." ended by a bare LF: an unstuffed, empty line
        } else {
          state_ = state::in_line;
        }
        break;
      case state::dot_cr:
        if (c == '\n') {
          state_ = state::done;
          return {pos + 1, true};
        }
        end_line(true);  // "." ended by a bare CR: an unstuffed, empty line
        break;
      case state::done:
        return {pos, true};
    }
  }
  return {pos, false};
}

}  // namespace oauth_relay::smtp
