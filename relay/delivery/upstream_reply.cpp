// Upstream reply and EHLO parsing (RFC 5321 §4.2, RFC 3463, RFC 2034) and
// the SASL XOAUTH2 response: pure functions over bytes, table-tested and fuzzed.
#include "relay/delivery/upstream_reply.hpp"

#include <algorithm>

#include "common/secret.hpp"
#include "common/text.hpp"

namespace oauth_relay::smtp {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
char to_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_upper(c);
  return out;
}

// RFC 3463 §2: subject and detail are 1 to 3 digits.
constexpr std::size_t max_enhanced_part = 3;

}  // namespace

std::size_t enhanced_code_length(std::string_view text, int reply_class) {
  if (text.size() < 5 || text[0] != static_cast<char>('0' + reply_class) || text[1] != '.') {
    return 0;
  }
  if (reply_class != 2 && reply_class != 4 && reply_class != 5) return 0;
  std::size_t i = 2;
  for (int part = 0; part < 2; ++part) {
    const std::size_t start = i;
    while (i < text.size() && is_digit(text[i]) && i - start < max_enhanced_part + 1) ++i;
    const std::size_t digits = i - start;
    if (digits == 0 || digits > max_enhanced_part) return 0;
    if (part == 0) {
      if (i >= text.size() || text[i] != '.') return 0;
      ++i;
    }
  }
  if (i < text.size() && text[i] != ' ') return 0;
  return i;
}

reply_parser::step reply_parser::fail(std::size_t consumed, std::string message) {
  state_ = status::error;
  error_.message = std::move(message);
  partial_.clear();
  return {consumed, status::error};
}

bool reply_parser::add_line(std::string_view line) {
  if (line.size() > max_reply_line) {
    fail(0, "reply line longer than " + std::to_string(max_reply_line) + " octets");
    return false;
  }
  if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2])) {
    fail(0, "reply line does not start with a three-digit code");
    return false;
  }
  const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
  // RFC 5321 §4.2: the first digit is 2 to 5 (SMTP has no 1yz replies).
  if (code < 200 || code > 599) {
    fail(0, "reply code " + std::to_string(code) + " is out of range");
    return false;
  }
  if (!reply_.lines.empty() && code != reply_.code) {
    fail(0, "reply lines carry different codes (" + std::to_string(reply_.code) + " then " +
                std::to_string(code) + ")");
    return false;
  }
  bool last = true;
  std::string_view text;
  if (line.size() > 3) {
    if (line[3] == '-') {
      last = false;
    } else if (line[3] != ' ') {
      fail(0, "reply code " + std::to_string(code) + " is not followed by a space or '-'");
      return false;
    }
    text = line.substr(4);
  }
  size_ += line.size() + 2;
  if (size_ > max_reply_size) {
    fail(0, "reply longer than " + std::to_string(max_reply_size) + " octets");
    return false;
  }
  reply_.code = code;
  // A CR inside a line is not SMTP; as a space it can never end up framing
  // anything (smtp::reply::wire writes it the same way).
  std::string& stored = reply_.lines.emplace_back(text);
  std::replace(stored.begin(), stored.end(), '\r', ' ');
  if (last) finish();
  return true;
}

void reply_parser::finish() {
  state_ = status::complete;
  const std::size_t n = enhanced_code_length(reply_.lines.front(), reply_.code / 100);
  if (n == 0) return;
  reply_.enhanced = reply_.lines.front().substr(0, n);
  // RFC 2034 §4 puts the code on every line; strip it wherever it is.
  for (std::string& text : reply_.lines) {
    if (text.compare(0, n, reply_.enhanced) == 0 && (text.size() == n || text[n] == ' ')) {
      text.erase(0, text.size() == n ? n : n + 1);
    }
  }
}

reply_parser::step reply_parser::feed(std::string_view input) {
  if (state_ != status::incomplete) return {0, state_};
  std::size_t used = 0;
  while (used < input.size()) {
    const std::size_t newline = input.find('\n', used);
    if (newline == std::string_view::npos) {
      partial_.append(input.substr(used));
      used = input.size();
      // One more octet may be the CR of the CRLF still to come.
      if (partial_.size() > max_reply_line + 1) {
        return fail(used, "reply line longer than " + std::to_string(max_reply_line) + " octets");
      }
      break;
    }
    std::string_view piece = input.substr(used, newline - used);
    used = newline + 1;
    std::string_view line = piece;
    if (!partial_.empty()) {
      partial_.append(piece);
      line = partial_;
    }
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const bool ok = add_line(line);
    partial_.clear();
    if (!ok) return {used, status::error};
    if (state_ == status::complete) return {used, status::complete};
  }
  return {used, state_};
}

reply reply_parser::take() {
  reply out = std::move(reply_);
  reset();
  return out;
}

void reply_parser::reset() {
  partial_.clear();
  reply_ = reply{};
  size_ = 0;
  state_ = status::incomplete;
  error_ = reply_error{};
}

std::variant<reply, reply_error> parse_reply(std::string_view text) {
  reply_parser parser;
  const auto step = parser.feed(text);
  switch (step.state) {
    case reply_parser::status::error:
      return parser.error();
    case reply_parser::status::incomplete:
      return reply_error{"reply is incomplete"};
    case reply_parser::status::complete:
      break;
  }
  if (step.consumed != text.size()) return reply_error{"text after the end of the reply"};
  return parser.take();
}

bool ehlo_capabilities::offers_auth(std::string_view mechanism) const {
  const std::string wanted = upper(mechanism);
  for (const auto& m : auth_mechanisms) {
    if (m == wanted) return true;
  }
  return false;
}

ehlo_capabilities parse_ehlo(const reply& ehlo_reply) {
  ehlo_capabilities caps;
  if (ehlo_reply.lines.empty()) return caps;
  const std::string& first = ehlo_reply.lines.front();
  caps.domain = first.substr(0, first.find(' '));
  for (std::size_t i = 1; i < ehlo_reply.lines.size(); ++i) {
    std::string_view line = ehlo_reply.lines[i];
    // "AUTH=LOGIN PLAIN" is the pre-RFC 4954 spelling some servers still send.
    const std::size_t end = line.find_first_of(" =");
    const std::string keyword = upper(line.substr(0, end));
    std::string_view params = end == std::string_view::npos ? "" : line.substr(end + 1);
    if (keyword == "PIPELINING") {
      caps.pipelining = true;
    } else if (keyword == "STARTTLS") {
      caps.starttls = true;
    } else if (keyword == "8BITMIME") {
      caps.eight_bit_mime = true;
    } else if (keyword == "SMTPUTF8") {
      caps.smtputf8 = true;
    } else if (keyword == "ENHANCEDSTATUSCODES") {
      caps.enhanced_status_codes = true;
    } else if (keyword == "DSN") {
      caps.dsn = true;
    } else if (keyword == "CHUNKING") {
      caps.chunking = true;
    } else if (keyword == "SIZE") {
      caps.size = true;
      std::uint64_t limit = 0;
      bool valid = !params.empty();
      for (char c : params) {
        if (!is_digit(c) || limit > (UINT64_MAX - 9) / 10) {
          valid = false;
          break;
        }
        limit = limit * 10 + static_cast<std::uint64_t>(c - '0');
      }
      caps.size_limit = valid ? limit : 0;
    } else if (keyword == "AUTH") {
      while (!params.empty()) {
        const std::size_t space = params.find(' ');
        const std::string mechanism = upper(params.substr(0, space));
        params.remove_prefix(space == std::string_view::npos ? params.size() : space + 1);
        if (!mechanism.empty() && !caps.offers_auth(mechanism)) {
          caps.auth_mechanisms.push_back(mechanism);
        }
      }
    }
  }
  return caps;
}

std::string xoauth2_initial_response(std::string_view user, std::string_view access_token) {
  std::string raw;
  raw.reserve(user.size() + access_token.size() + 24);
  raw.append("user=").append(user).append("\x01").append("auth=Bearer ");
  raw.append(access_token).append("\x01\x01");
  // The plain copy of the token is wiped before its memory is freed; the
  // caller wipes the encoded one after sending it.
  oauth_relay::wipe_on_exit wipe_raw(raw);
  return oauth_relay::base64_encode(raw);
}

}  // namespace oauth_relay::smtp
