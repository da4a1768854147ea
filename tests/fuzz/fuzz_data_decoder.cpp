// libFuzzer target for the DATA decoder: the first octets choose a line limit
// and a chunking; decoding in chunks must equal decoding whole and the simple
// reference, and the output must never hold a bare CR or LF.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/smtp/data_decoder.hpp"
#include "tests/fuzz/data_decoder_reference.hpp"

namespace smtp = oauth_relay::smtp;

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

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

// Chunk sizes are taken in turn from `chunks`, each octet modulo 64 (a zero is
// an empty feed); with no chunks or only zeros, input is fed whole or bytewise.
outcome decode(std::string_view input, std::string_view chunks, std::size_t max_line) {
  std::size_t any_size = 0;
  for (char c : chunks) any_size |= static_cast<unsigned char>(c) % 64;
  smtp::data_decoder decoder(max_line);
  outcome o;
  std::size_t offset = 0;
  for (std::size_t k = 0; offset < input.size() && !o.done; ++k) {
    std::size_t length = input.size();
    if (!chunks.empty()) {
      length = any_size == 0 ? 1 : static_cast<unsigned char>(chunks[k % chunks.size()]) % 64;
    }
    length = std::min(length, input.size() - offset);
    const auto step = decoder.feed(input.substr(offset, length), o.out);
    check(step.consumed <= length);
    check(step.done || step.consumed == length);
    o.consumed += step.consumed;
    o.done = step.done;
    offset += length;
  }
  o.size = decoder.size();
  o.line_too_long = decoder.line_too_long();
  o.bare = decoder.had_bare_line_ending();
  o.eight_bit = decoder.had_8bit();
  o.nul = decoder.had_nul();
  return o;
}

bool only_crlf_line_endings(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && (i + 1 == s.size() || s[i + 1] != '\n')) return false;
    if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r')) return false;
  }
  return true;
}

// The transparency procedure of RFC 5321 §4.5.2 plus the end marker, as the
// delivering side will send the message on.
std::string stuff(std::string_view message) {
  std::string wire;
  bool line_start = true;
  for (char c : message) {
    if (line_start && c == '.') wire += '.';
    wire += c;
    line_start = c == '\n';
  }
  return wire + ".\r\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data), size);
  const auto control = static_cast<unsigned char>(all[0]);
  const std::size_t chunk_octets = std::min<std::size_t>(control & 7, size - 1);
  const std::size_t max_line = 2 + (control >> 3) * 4;  // 2..126: long lines are common
  const std::string_view chunks = all.substr(1, chunk_octets);
  const std::string_view input = all.substr(1 + chunk_octets);

  const outcome whole = decode(input, {}, max_line);
  const outcome chunked = decode(input, chunks, max_line);
  const outcome bytewise = decode(input, "\x01", max_line);
  check(chunked == whole);
  check(bytewise == whole);

  const auto r = smtp::reference::decode(input, max_line);
  check(whole == (outcome{r.out, r.consumed, r.done, r.out.size(), r.line_too_long,
                          r.bare_line_ending, r.eight_bit, r.nul}));

  check(whole.consumed <= input.size());
  check(whole.size == whole.out.size());
  check(only_crlf_line_endings(whole.out));
  if (whole.done) {
    const std::string_view used = input.substr(0, whole.consumed);
    check(used.size() >= 3 && used.substr(used.size() - 3) == ".\r\n");
    check(used.size() == 3 || used.substr(used.size() - 5, 2) == "\r\n");
    // Sent on with dot-stuffing, the message decodes to itself.
    const std::string wire = stuff(whole.out);
    const outcome again = decode(wire, chunks, max_line);
    check(again.done && again.consumed == wire.size() && again.out == whole.out);
    check(!again.bare && again.line_too_long == whole.line_too_long);
  } else {
    check(whole.consumed == input.size());
  }
  return 0;
}
