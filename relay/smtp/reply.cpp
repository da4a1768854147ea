// Wire form of SMTP replies (RFC 5321 §4.2, RFC 2034 §4). Text that holds a CR
// or LF is written with spaces instead, so no reply can break the framing.
#include "relay/smtp/reply.hpp"

#include "common/text.hpp"

namespace oauth_relay::smtp {

namespace {

void append_line(std::string& out, int code, bool last, std::string_view enhanced,
                 std::string_view text) {
  out += std::to_string(code);
  // RFC 4954 §4: an AUTH challenge is "334" SP [base64], the space even when it is empty.
  if (enhanced.empty() && text.empty() && code != 334) {
    if (!last) out += '-';
    out += "\r\n";
    return;
  }
  out += last ? ' ' : '-';
  if (!enhanced.empty()) {
    out += enhanced;
    if (!text.empty()) out += ' ';
  }
  for (char c : text) out += (c == '\r' || c == '\n') ? ' ' : c;
  out += "\r\n";
}

}  // namespace

void reply::append_to(std::string& out) const {
  if (lines.empty()) {
    append_line(out, code, true, enhanced, {});
    return;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    append_line(out, code, i + 1 == lines.size(), enhanced, lines[i]);
  }
}

std::string reply::wire() const {
  std::string out;
  append_to(out);
  return out;
}

reply make_reply(int code, std::string_view enhanced, std::string_view text) {
  return reply{code, std::string(enhanced), {std::string(text)}};
}

std::string to_line(const reply& r) {
  std::string out = std::to_string(r.code);
  if (!r.enhanced.empty()) out += " " + r.enhanced;
  for (std::size_t i = 0; i < r.lines.size(); ++i) {
    out += i == 0 ? " " : " / ";
    out += r.lines[i];
  }
  return oauth_relay::one_line(out);
}

}  // namespace oauth_relay::smtp
