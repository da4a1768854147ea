// A line starts after LF: the spool holds CR LF lines only, and treating a
// lone LF as a line end too stuffs more, never less, should one get in.
#include "relay/delivery/dot_stuffer.hpp"

namespace oauth_relay::relay {

void dot_stuffer::feed(std::string_view piece, std::string& out) {
  if (piece.empty()) return;
  std::size_t pos = 0;
  while (pos < piece.size()) {
    if (line_start_ && piece[pos] == '.') out += '.';
    const std::size_t lf = piece.find('\n', pos);
    const std::size_t end = lf == std::string_view::npos ? piece.size() : lf + 1;
    out.append(piece.substr(pos, end - pos));
    line_start_ = lf != std::string_view::npos;
    pos = end;
  }
  before_last_ = piece.size() >= 2 ? piece[piece.size() - 2] : last_;
  last_ = piece.back();
  empty_ = false;
}

void dot_stuffer::finish(std::string& out) {
  if (!empty_ && !(before_last_ == '\r' && last_ == '\n')) out += "\r\n";
  out += ".\r\n";
}

}  // namespace oauth_relay::relay
