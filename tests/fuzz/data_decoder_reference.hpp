// A deliberately simple, whole-input DATA decoder that follows the rules of
// relay/data_decoder.hpp line by line; the unit tests and the fuzz target
// compare the streaming decoder against it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace oauth_relay::smtp::reference {

struct result {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  bool line_too_long = false;
  bool bare_line_ending = false;
  bool eight_bit = false;
  bool nul = false;
};

inline result decode(std::string_view in, std::size_t max_line) {
  result r;
  std::size_t i = 0;
  bool after_crlf = true;  // the data starts right after DATA's CR LF
  while (true) {
    if (after_crlf && in.substr(i, 3) == ".\r\n") {
      r.consumed = i + 3;
      r.done = true;
      return r;
    }
    if (i < in.size() && in[i] == '.') ++i;  // dot-stuffing
    std::size_t length = 0;
    while (i < in.size() && in[i] != '\r' && in[i] != '\n') {
      const auto c = static_cast<unsigned char>(in[i++]);
      r.out += static_cast<char>(c);
      ++length;
      if (c > 0x7f) r.eight_bit = true;
      if (c == 0) r.nul = true;
    }
    if (length + 2 > max_line) r.line_too_long = true;
    // A CR as the last octet is undecided: CR LF or bare CR.
    if (i == in.size() || (in[i] == '\r' && i + 1 == in.size())) {
      r.consumed = in.size();
      return r;
    }
    after_crlf = in[i] == '\r' && in[i + 1] == '\n';
    i += after_crlf ? 2 : 1;
    if (!after_crlf) r.bare_line_ending = true;
    r.out += "\r\n";
  }
}

}  // namespace oauth_relay::smtp::reference
