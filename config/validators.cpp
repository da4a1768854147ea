// The config's pure text checks. Mail addresses and domain names use the SMTP
// server's grammar (relay/smtp/parser.hpp) with the config's stricter rules on top.
#include "config/validators.hpp"

#include <arpa/inet.h>
#include <sys/un.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <system_error>

#include "relay/smtp/parser.hpp"

namespace oauth_relay::config {
namespace {

static_assert(sizeof(sockaddr_un{}.sun_path) == max_unix_socket_path + 1);

// Durations end up added to clock readings kept in nanoseconds (int64, ~292
// years); a century keeps `now + duration` far from overflowing.
constexpr std::uint64_t max_duration_seconds = 36500ULL * 24 * 3600;

bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}

// The digits of a duration or size (its unit letter already taken off) times
// `unit`; zero and products above `max` are refused.
std::optional<std::uint64_t> parse_with_unit(std::string_view text, std::uint64_t unit,
                                             std::uint64_t max) {
  std::uint64_t count = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || count == 0 ||
      count > max / unit) {
    return std::nullopt;
  }
  return count * unit;
}

}  // namespace

std::optional<std::vector<std::uint8_t>> parse_ip(std::string_view text) {
  if (text.empty() || text.find('\0') != std::string_view::npos) return std::nullopt;
  const std::string s(text);
  std::array<std::uint8_t, 16> buf{};
  if (::inet_pton(AF_INET, s.c_str(), buf.data()) == 1) {
    return std::vector<std::uint8_t>(buf.begin(), buf.begin() + 4);
  }
  if (::inet_pton(AF_INET6, s.c_str(), buf.data()) == 1) {
    return std::vector<std::uint8_t>(buf.begin(), buf.end());
  }
  return std::nullopt;
}

std::string format_ip(const std::vector<std::uint8_t>& ip) {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(ip.size() == 4 ? AF_INET : AF_INET6, ip.data(), buf, sizeof buf);
  return buf;
}

bool is_v4_mapped(const std::vector<std::uint8_t>& ip) {
  static constexpr std::array<std::uint8_t, 12> prefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return ip.size() == 16 && std::equal(prefix.begin(), prefix.end(), ip.begin());
}

std::optional<network> parse_network(std::string_view text) {
  const std::size_t slash = text.find('/');
  const auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  network net{*ip, static_cast<unsigned>(ip->size() * 8)};
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    unsigned length = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
    if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
        length > net.prefix_length) {
      return std::nullopt;
    }
    net.prefix_length = length;
  }
  if (is_v4_mapped(net.address) && net.prefix_length >= 96) {
    net.address.erase(net.address.begin(), net.address.begin() + 12);
    net.prefix_length -= 96;
  }
  // Clear the host bits so equal networks compare equal.
  for (std::size_t bit = net.prefix_length; bit < net.address.size() * 8; ++bit) {
    net.address[bit / 8] &= static_cast<std::uint8_t>(~(0x80u >> (bit % 8)));
  }
  return net;
}

bool network::contains(const std::vector<std::uint8_t>& ip) const {
  std::vector<std::uint8_t> candidate = ip;
  if (is_v4_mapped(candidate)) candidate.erase(candidate.begin(), candidate.begin() + 12);
  std::vector<std::uint8_t> net = address;
  unsigned length = prefix_length;
  if (is_v4_mapped(net) && length >= 96) {
    net.erase(net.begin(), net.begin() + 12);
    length -= 96;
  }
  if ((net.size() != 4 && net.size() != 16) || candidate.size() != net.size() ||
      length > net.size() * 8) {
    return false;
  }
  const std::size_t whole = length / 8;
  if (!std::equal(net.begin(), net.begin() + static_cast<std::ptrdiff_t>(whole),
                  candidate.begin())) {
    return false;
  }
  const unsigned rest = length % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (net[whole] & mask) == (candidate[whole] & mask);
}

listen_address listen_address::unix_socket(std::filesystem::path path) {
  listen_address a;
  a.unix_path = std::move(path);
  return a;
}

std::string listen_address::to_string() const {
  if (is_unix()) return std::string(unix_socket_prefix) + unix_path.string();
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool listen_address::is_local() const {
  if (is_unix()) return true;
  const auto ip = parse_ip(host);
  if (!ip) return false;
  static const network v4_loopback = *parse_network("127.0.0.0/8");
  static const network v6_loopback = *parse_network("::1/128");
  return v4_loopback.contains(*ip) || v6_loopback.contains(*ip);
}

// "IP:PORT" or "[IPv6]:PORT"; the host is stored in inet_ntop's canonical form.
// "unix:PATH": an absolute path that fits sockaddr_un with its final NUL.
std::optional<listen_address> parse_listen(std::string_view text) {
  if (text.starts_with(unix_socket_prefix)) {
    const std::string_view path = text.substr(unix_socket_prefix.size());
    if (!path.starts_with('/') || path.size() > max_unix_socket_path ||
        path.find('\0') != std::string_view::npos) {
      return std::nullopt;
    }
    return listen_address::unix_socket(std::filesystem::path(path).lexically_normal());
  }
  std::string_view host;
  std::string_view port;
  if (text.starts_with('[')) {
    const std::size_t close = text.find("]:");
    if (close == std::string_view::npos) return std::nullopt;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (host.find(':') == std::string_view::npos) return std::nullopt;  // brackets are for IPv6
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return std::nullopt;  // IPv6 needs brackets
  }
  const auto ip = parse_ip(host);
  // Port 0 asks the kernel for a free port (tests and benchmarks; the daemon logs the one it got).
  const auto number = port == "0" ? std::optional<std::uint16_t>(0) : parse_port(port);
  if (!ip || !number) return std::nullopt;
  return listen_address{format_ip(*ip), *number};
}

// The server's domain grammar (ASCII labels of letters, digits and inner
// hyphens, 1-63 each) plus two rules of the config's own: the 253-character
// text limit, and no all-numeric last label (no top-level domain is numeric,
// and it keeps IPv4 literals out).
bool is_domain_name(std::string_view name) {
  if (name.size() > max_domain_name_length || !smtp::is_valid_domain(name, false)) return false;
  const std::string_view last = name.substr(name.rfind('.') + 1);
  return !std::all_of(last.begin(), last.end(), is_ascii_digit);
}

std::optional<std::string> parse_host(std::string_view text) {
  std::string_view name = text;
  // "[::1]" as in a URL is taken to mean ::1.
  const bool bracketed = name.size() > 2 && name.front() == '[' && name.back() == ']';
  if (bracketed) name = name.substr(1, name.size() - 2);
  const bool ip = parse_ip(name).has_value() && (!bracketed || name.find(':') != name.npos);
  if (ip || (!bracketed && is_domain_name(name))) return std::string(name);
  return std::nullopt;
}

// The server's mailbox grammar (RFC 5321 §4.1.2, ASCII, length limits of
// §4.5.3.1) narrowed: the server also takes quoted local parts and address
// literals, which no Google account has, and its domains are checked by
// is_domain_name's stricter rules.
bool is_email_address(std::string_view address) {
  if (address.starts_with('"') || !smtp::is_valid_mailbox(address, false)) return false;
  return is_domain_name(address.substr(address.rfind('@') + 1));
}

bool is_sender_pattern(std::string_view pattern) {
  if (pattern.find('*') == std::string_view::npos) return is_email_address(pattern);
  if (std::count(pattern.begin(), pattern.end(), '@') != 1) return false;
  return std::none_of(pattern.begin(), pattern.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"';
  });
}

bool is_login_name(std::string_view name) {
  if (name.empty() || name.size() > max_login_name || name.front() == '-') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_ascii_digit(c) ||
           std::string_view("._-@+").find(c) != std::string_view::npos;
  });
}

std::optional<std::size_t> parse_positive(std::string_view text) {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
  const auto value = parse_positive(text);
  if (!value || *value > std::numeric_limits<std::uint16_t>::max()) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

bool is_https_url(std::string_view text) {
  constexpr std::string_view scheme = "https://";
  return text.size() > scheme.size() && text.starts_with(scheme) &&
         std::none_of(text.begin(), text.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= ' ' || c == 0x7f; });
}

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  std::uint64_t unit = 1;
  if (!text.empty() && !is_ascii_digit(text.back())) {
    switch (text.back()) {
      case 's':
        unit = 1;
        break;
      case 'm':
        unit = 60;
        break;
      case 'h':
        unit = 3600;
        break;
      case 'd':
        unit = 24 * 3600;
        break;
      default:
        return std::nullopt;
    }
    text.remove_suffix(1);
  }
  const auto seconds = parse_with_unit(text, unit, max_duration_seconds);
  if (!seconds) return std::nullopt;
  return std::chrono::seconds(static_cast<std::chrono::seconds::rep>(*seconds));
}

// Zero is refused too: no message fits in it.
std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t unit = 1;
  if (!text.empty() && (text.back() == 'K' || text.back() == 'M')) {
    unit = text.back() == 'K' ? 1024 : 1024 * 1024;
    text.remove_suffix(1);
  }
  return parse_with_unit(text, unit, std::numeric_limits<std::uint64_t>::max());
}

}  // namespace oauth_relay::config
