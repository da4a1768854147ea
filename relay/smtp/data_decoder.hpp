// Pure decoder for the DATA phase (RFC 5321 §4.1.1.4, §4.5.2): finds the end of
// data, removes dot-stuffing and normalises line endings. Only CR LF "." CR LF
// ends the data; a bare LF or bare CR never ends a message (no SMTP smuggling)
// and is stored as CR LF, so nothing but CR LF line endings is ever forwarded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace oauth_relay::smtp {

class data_decoder {
 public:
  // `max_line` counts octets of one line including its CRLF (RFC 5321 §4.5.3.1.6).
  explicit data_decoder(std::size_t max_line = 1000);

  struct step {
    std::size_t consumed = 0;  // input octets used; the rest belongs to the next command
    bool done = false;         // the end-of-data line was seen (and consumed)
  };

  // Decodes as much of `input` as belongs to the message and appends the
  // message octets to `out`. Call repeatedly with further input until done;
  // input after the end of data is left unconsumed.
  step feed(std::string_view input, std::string& out);

  // Octets of message content decoded so far (after unstuffing and CRLF normalisation).
  std::uint64_t size() const { return size_; }
  // True when some line was longer than max_line (the message is still decoded to its end).
  bool line_too_long() const { return line_too_long_; }
  // True when any bare CR or bare LF was normalised.
  bool had_bare_line_ending() const { return bare_line_ending_; }
  // True when an octet above 0x7f was seen (8-bit content).
  bool had_8bit() const { return eight_bit_; }
  // True when a NUL octet was seen.
  bool had_nul() const { return nul_; }

 private:
  // Where the decoder stands relative to line structure; see data_decoder.cpp.
  enum class state : std::uint8_t;
  std::size_t max_line_;
  state state_;
  std::size_t line_length_ = 0;
  std::uint64_t size_ = 0;
  bool line_too_long_ = false;
  bool bare_line_ending_ = false;
  bool eight_bit_ = false;
  bool nul_ = false;
  bool after_crlf_ = true;  // the current line was begun by a real CR LF (or DATA's)
};

}  // namespace oauth_relay::smtp
