// libFuzzer target for the upstream reply parser, EHLO capabilities and the
// base64 (common/text) that decodes XOAUTH2 challenges: any bytes fed in any
// split give the same replies, every reply is well formed, and its wire form
// parses back to itself.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/text.hpp"
#include "relay/delivery/upstream_reply.hpp"

namespace smtp = oauth_relay::smtp;

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

struct outcome {
  std::vector<smtp::reply> replies;
  bool error = false;
};

// Feeds `input` in pieces of `piece` octets (0: all at once) until it is used
// up or the parser reports an error.
outcome parse_all(std::string_view input, std::size_t piece) {
  outcome out;
  smtp::reply_parser parser;
  std::size_t offset = 0;
  while (offset < input.size()) {
    const std::size_t n = piece == 0 ? input.size() - offset : piece;
    std::string_view chunk = input.substr(offset, n);
    while (!chunk.empty()) {
      const auto step = parser.feed(chunk);
      check(step.consumed <= chunk.size());
      chunk.remove_prefix(step.consumed);
      offset += step.consumed;
      if (step.state == smtp::reply_parser::status::error) {
        check(!parser.error().message.empty());
        out.error = true;
        return out;
      }
      if (step.state == smtp::reply_parser::status::complete) {
        out.replies.push_back(parser.take());
      } else {
        check(chunk.empty());  // incomplete means every octet was taken
      }
    }
  }
  return out;
}

void check_reply(const smtp::reply& r) {
  check(r.code >= 200 && r.code <= 599);
  check(!r.lines.empty());
  std::size_t total = 0;
  for (const auto& line : r.lines) {
    check(line.find_first_of("\r\n") == std::string::npos);
    check(line.size() <= smtp::max_reply_line);
    total += line.size();
  }
  check(total <= smtp::max_reply_size);
  if (!r.enhanced.empty()) {
    check(smtp::enhanced_code_length(r.enhanced, r.code / 100) == r.enhanced.size());
  }
  // The wire form parses back to the same reply.
  const auto again = smtp::parse_reply(r.wire());
  check(std::holds_alternative<smtp::reply>(again));
  const auto& a = std::get<smtp::reply>(again);
  check(a.code == r.code && a.enhanced == r.enhanced && a.lines.size() == r.lines.size());
  for (std::size_t i = 0; i < a.lines.size(); ++i) check(a.lines[i] == r.lines[i]);

  const auto caps = smtp::parse_ehlo(r);
  check(caps.size || caps.size_limit == 0);
  for (const auto& m : caps.auth_mechanisms) check(!m.empty() && caps.offers_auth(m));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  const outcome whole = parse_all(input, 0);
  for (const auto& r : whole.replies) check_reply(r);
  // Splitting the input anywhere changes nothing.
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}}) {
    const outcome split = parse_all(input, piece);
    check(split.error == whole.error && split.replies.size() == whole.replies.size());
    for (std::size_t i = 0; i < split.replies.size(); ++i) {
      check(split.replies[i].wire() == whole.replies[i].wire());
    }
  }

  // base64 round trips, and decoding never accepts what encoding cannot give back.
  const std::string encoded = oauth_relay::base64_encode(input);
  check(oauth_relay::base64_decode(encoded) == std::string(input));
  if (const auto decoded = oauth_relay::base64_decode(input)) {
    std::string canonical(input);
    while (canonical.size() % 4 != 0) canonical += '=';
    check(oauth_relay::base64_encode(*decoded) == canonical);
  }
  return 0;
}
