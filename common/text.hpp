// Text helpers shared by every part: one printable log line, RFC 5322 dates,
// base64 (RFC 4648), a URL query's pairs. Pure functions, table-tested
// (tests/common).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace oauth_relay {

// `text` as one printable line for a log or an error message: control
// characters (CR, LF, NUL, ...) become spaces, and past `max` bytes it is cut
// and ends with "...".
inline constexpr std::size_t default_line_limit = 512;
std::string one_line(std::string_view text, std::size_t max = default_line_limit);

// `text` on one line but with nothing lost, for a value shown in an error
// message or a log line: control characters and DEL become \xNN, and each
// character of `backslashed` (inside quotes: the quote and the backslash) gets
// a backslash before it. The one escaping of the config errors and the log.
std::string escaped(std::string_view text, std::string_view backslashed = {});

// RFC 5322 §3.3 date-time in the local time zone with English day and month
// names whatever the locale: "Sun, 22 Nov 2026 04:15:26 +0100".
std::string rfc5322_date(std::int64_t unix_seconds);

// RFC 4648 §4 base64 with padding, and §5 base64url without padding.
std::string base64_encode(std::string_view bytes);
std::string base64url_encode(std::string_view bytes);
// Strict: the alphabet only, no white space, unused bits zero (§3.5);
// padding may be left off, but when present it must be right. Nothing when
// the text is not that.
std::optional<std::string> base64_decode(std::string_view text);
std::optional<std::string> base64url_decode(std::string_view text);

// The name=value pairs of a URL query ("a=1&b=&c"), in order, as written (not
// percent-decoded: the caller decides); empty pairs are skipped, and a pair
// without '=' has an empty value. Views into `query`.
std::vector<std::pair<std::string_view, std::string_view>> query_pairs(std::string_view query);

}  // namespace oauth_relay
