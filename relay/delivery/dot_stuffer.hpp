// Pure encoder for content sent after DATA (RFC 5321 §4.5.2), the outbound
// counterpart of smtp/data_decoder: dot-stuffing for content that arrives in
// pieces, and the end-of-data line. No I/O, so it is table-tested.
#pragma once

#include <string>
#include <string_view>

namespace oauth_relay::relay {

class dot_stuffer {
 public:
  // Appends `piece`, the next part of the content, to `out` with a "." put
  // before every line that starts with one, in whichever piece the line
  // starts (a piece may end anywhere: after a CR, before a line's first ".").
  void feed(std::string_view piece, std::string& out);
  // Appends the end of the data: a CR LF when the content did not end with
  // one (so the final "." stands on a line of its own), then ".\r\n".
  void finish(std::string& out);

 private:
  bool line_start_ = true;  // the next octet begins a line
  bool empty_ = true;       // nothing fed yet
  char last_ = 0;           // the content's last two octets so far
  char before_last_ = 0;
};

}  // namespace oauth_relay::relay
