// Loads the YAML configuration into typed settings, checking every key and
// collecting every problem with its position instead of stopping at the first.
#include "config/config.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;

// Durations end up added to clock readings kept in nanoseconds (int64, ~292
// years); a century keeps `now + duration` far from overflowing.
constexpr std::uint64_t max_duration_seconds = 36500ULL * 24 * 3600;
// Unknown keys within this edit distance of a known one get a suggestion.
constexpr std::size_t max_suggestion_distance = 2;
// Values quoted in messages are cut here so one line stays one line.
constexpr std::size_t max_quoted_length = 60;
// RFC 1035 §2.3.4: 63 octets per label, 255 per name (253 in text form).
constexpr std::size_t max_label_length = 63;
constexpr std::size_t max_domain_length = 253;
// RFC 5321 §4.5.3.1.1 and §4.5.3.1.3.
constexpr std::size_t max_local_part_length = 64;
constexpr std::size_t max_address_length = 254;
// Config, secret and CA files are read whole. A system CA bundle is a few
// hundred KB; anything past this is a mistake (/dev/zero, a log file) that
// would otherwise be read until memory runs out.
constexpr std::size_t max_file_size = 16 * 1024 * 1024;

// ---------------------------------------------------------------------------
// Pure syntax checks.

bool is_ascii_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_ascii_alnum(char c) {
  return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// An IP literal (no brackets, no zone) as 4 or 16 bytes.
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

// Host names: letters, digits and inner hyphens, 1-63 per label (RFC 1123
// §2.1). An all-numeric last label is refused so "10.0.0.1" is not a name.
bool is_domain_name(std::string_view name) {
  if (name.empty() || name.size() > max_domain_length) return false;
  std::size_t start = 0;
  std::string_view last;
  while (true) {
    const std::size_t dot = name.find('.', start);
    const std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > max_label_length) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!is_ascii_alnum(c) && c != '-') return false;
    }
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return !std::all_of(last.begin(), last.end(), is_ascii_digit);
}

// RFC 5322 atext: what a dot-atom local part may hold besides dots.
bool is_atext(char c) {
  return is_ascii_alnum(c) ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

// local@domain with a dot-atom local part; quoted local parts are not
// accepted, no Google account has one.
bool is_email_address(std::string_view address) {
  if (address.size() > max_address_length) return false;
  const std::size_t at = address.rfind('@');
  if (at == std::string_view::npos) return false;
  const std::string_view local = address.substr(0, at);
  const std::string_view domain = address.substr(at + 1);
  if (local.empty() || local.size() > max_local_part_length) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  if (local.find("..") != std::string_view::npos) return false;
  for (char c : local) {
    if (!is_atext(c) && c != '.') return false;
  }
  return is_domain_name(domain);
}

// An address, or one with '*' standing for any run of characters.
bool is_sender_pattern(std::string_view pattern) {
  if (pattern.find('*') == std::string_view::npos) return is_email_address(pattern);
  if (std::count(pattern.begin(), pattern.end(), '@') != 1) return false;
  return std::none_of(pattern.begin(), pattern.end(), [](char c) {
    return static_cast<unsigned char>(c) <= ' ' || c == 0x7f || c == '<' || c == '>' || c == '"';
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

// "IP:PORT" or "[IPv6]:PORT"; the host is stored in inet_ntop's canonical form.
std::optional<listen_address> parse_listen(std::string_view text) {
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

// "10.0.0.0/8", "::1/128", or a bare address for a single host. IPv4-mapped
// IPv6 networks are stored as the IPv4 network they mean.
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

// Optimal string alignment distance: an adjacent swap counts as one typo.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// `text` with control characters written as \xNN, so a message that shows
// it (a path, a yaml-cpp message quoting the octet it choked on) stays one line.
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

// A value for a message: quoted, escaped, and cut when long.
std::string quote(std::string_view value) {
  std::string out = "\"";
  const std::size_t shown = std::min(value.size(), max_quoted_length);
  for (char c : value.substr(0, shown)) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      static constexpr char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[(c >> 4) & 0xf];
      out += hex[c & 0xf];
    } else {
      out += c;
    }
  }
  if (shown < value.size()) out += "...";
  out += '"';
  return out;
}

struct file_contents {
  std::string text;
  int error = 0;  // errno when the file could not be read
};

file_contents read_file(const fs::path& path) {
  file_contents result;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    result.error = errno;
    return result;
  }
  char buf[4096];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      result.error = errno;
      break;
    }
    if (n == 0) break;
    result.text.append(buf, static_cast<std::size_t>(n));
    if (result.text.size() > max_file_size) {
      result.error = EFBIG;
      break;
    }
  }
  ::close(fd);
  return result;
}

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

std::string seconds_text(std::chrono::seconds s) {
  return std::to_string(s.count()) + "s";
}

// ---------------------------------------------------------------------------
// Walking the YAML tree.

struct position {
  int line = 0;  // 1-based; 0 when unknown
  int column = 0;
  friend auto operator<=>(const position&, const position&) = default;
};

position position_of(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

// One value being read: where it sits in the file and by what name errors
// call it ("limits.max_message_size", "accounts[1].address").
struct field {
  std::string path;
  // The key's position, or the item's for list items; missing keys of a
  // mapping are reported here. {1,1} for the document itself.
  position anchor;
  YAML::Node value;

  // yaml-cpp places empty values at the start of the next token, so those
  // are reported at their key.
  position where() const {
    if (value.IsNull()) return anchor;
    const position p = position_of(value);
    return p.line == 0 ? anchor : p;
  }
  std::string child_path(std::string_view key) const {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }
  // "limits: " before a message about this field; nothing at the top level.
  std::string prefix() const { return path.empty() ? std::string() : path + ": "; }
};

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return quote(node.Scalar());
    default:
      return "nothing";
  }
}

class reader;

// The entries of one mapping; unknown and duplicate keys are reported when it
// is built, so every key in the file is checked even if nothing asks for it.
class mapping {
 public:
  mapping(reader& r, const field& self, std::initializer_list<std::string_view> known);
  bool ok() const { return ok_; }
  std::optional<field> find(std::string_view key) const {
    for (const auto& [name, f] : entries_) {
      if (name == key) return f;
    }
    return std::nullopt;
  }
  const field& self() const { return self_; }

 private:
  field self_;
  bool ok_ = false;
  std::vector<std::pair<std::string, field>> entries_;
};

class reader {
 public:
  reader(std::string file, fs::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  load_result run(const std::string& text);

  void add(position p, std::string message) {
    errors_.push_back(error{file_, p.line, p.column, std::move(message)});
  }
  void add(const field& f, std::string_view message) {
    add(f.where(), f.prefix() + std::string(message));
  }
  void missing(const field& parent, std::string_view what) {
    add(parent.anchor, parent.prefix() + "missing required key " + std::string(what));
  }

 private:
  // Typed readers: each reports its own error and returns nullopt on failure.
  std::optional<std::string> scalar(const field& f, std::string_view expected);
  std::optional<std::string> non_empty_string(const field& f);
  std::optional<std::vector<field>> list(const field& f, std::string_view expected_items);
  std::optional<fs::path> path(const field& f);
  std::optional<std::optional<fs::path>> readable_path_or_null(const field& f);
  std::optional<std::chrono::seconds> duration(const field& f);
  std::optional<std::size_t> positive(const field& f);
  std::optional<std::uint16_t> port(const field& f);
  std::optional<bool> boolean(const field& f);
  std::optional<std::string> https_url(const field& f);

  template <typename T, typename Read>
  void read_into(const mapping& m, std::string_view key, T& out, Read read) {
    if (auto f = m.find(key)) {
      if (auto v = (this->*read)(*f)) out = std::move(*v);
    }
  }

  void read_listen(const mapping& top, settings& s);
  void read_hostname(const mapping& top, settings& s);
  void read_clients(const mapping& top, settings& s);
  void read_limits(const mapping& top, limits_settings& s);
  void read_upstream(const mapping& top, upstream_settings& s);
  void read_queue(const mapping& top, queue_settings& s);
  void read_oauth(const mapping& top, oauth_settings& s);
  void read_accounts(const mapping& top, std::vector<account_settings>& s);

  std::string file_;
  fs::path base_dir_;
  std::vector<error> errors_;
};

mapping::mapping(reader& r, const field& self, std::initializer_list<std::string_view> known)
    : self_(self) {
  // An empty section ("limits:" with every line under it commented out)
  // means all defaults.
  if (self.value.IsNull()) {
    ok_ = true;
    return;
  }
  if (!self.value.IsMap()) {
    r.add(self, "expected a mapping, got " + describe(self.value));
    return;
  }
  ok_ = true;
  for (auto it = self.value.begin(); it != self.value.end(); ++it) {
    // A copy: yaml-cpp iterators hand out a temporary pair, a reference would dangle.
    const YAML::Node key = it->first;
    const position key_at = position_of(key).line ? position_of(key) : self.where();
    if (!key.IsScalar()) {
      r.add(key_at, self.prefix() + "expected a key name, got " + describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      std::string message = self.prefix() + "unknown key " + quote(name);
      std::string_view best;
      std::size_t best_distance = max_suggestion_distance + 1;
      for (std::string_view candidate : known) {
        const std::size_t d = edit_distance(name, candidate);
        if (d < best_distance) {
          best = candidate;
          best_distance = d;
        }
      }
      if (!best.empty()) message += " (did you mean " + quote(best) + "?)";
      r.add(key_at, std::move(message));
      continue;
    }
    if (find(name)) {
      r.add(key_at, self.prefix() + "duplicate key " + quote(name));
      continue;
    }
    entries_.emplace_back(name, field{self.child_path(name), key_at, it->second});
  }
}

std::optional<std::string> reader::scalar(const field& f, std::string_view expected) {
  if (!f.value.IsScalar()) {
    add(f, "expected " + std::string(expected) + ", got " + describe(f.value));
    return std::nullopt;
  }
  return f.value.Scalar();
}

std::optional<std::string> reader::non_empty_string(const field& f) {
  auto s = scalar(f, "a non-empty string");
  if (s && s->empty()) {
    add(f, "expected a non-empty string, got \"\"");
    return std::nullopt;
  }
  return s;
}

std::optional<std::vector<field>> reader::list(const field& f, std::string_view expected_items) {
  if (!f.value.IsSequence()) {
    add(f, "expected a list, got " + describe(f.value));
    return std::nullopt;
  }
  std::vector<field> items;
  std::size_t index = 0;
  for (const YAML::Node& item : f.value) {
    // Null items ("-" alone) carry the next token's mark; use the list's.
    position anchor = item.IsNull() ? position() : position_of(item);
    if (anchor.line == 0) anchor = f.where();
    items.push_back(field{f.path + "[" + std::to_string(index++) + "]", anchor, item});
  }
  if (items.empty()) {
    add(f, "expected at least one " + std::string(expected_items) + ", got an empty list");
    return std::nullopt;
  }
  return items;
}

// Relative paths are taken relative to the directory of the config file, not
// the daemon's working directory, so a development config can point at
// directories next to it ("state_dir: ../dev/state") wherever it is run from.
std::optional<fs::path> reader::path(const field& f) {
  auto s = scalar(f, "a path");
  if (!s) return std::nullopt;
  if (s->empty() || s->find('\0') != std::string::npos) {
    add(f, "expected a path, got " + quote(*s));
    return std::nullopt;
  }
  const fs::path p(*s);
  return (p.is_absolute() ? p : base_dir_ / p).lexically_normal();
}

std::optional<std::optional<fs::path>> reader::readable_path_or_null(const field& f) {
  if (f.value.IsNull()) return std::optional<fs::path>();
  auto p = path(f);
  if (!p) return std::nullopt;
  const file_contents contents = read_file(*p);
  if (contents.error != 0) {
    add(f, "cannot read " + printable(p->string()) + ": " + std::strerror(contents.error));
    return std::nullopt;
  }
  return std::optional<fs::path>(*p);
}

std::optional<std::chrono::seconds> reader::duration(const field& f) {
  static constexpr std::string_view expected = "a duration like 60s, 5m, 1h or 5d";
  auto s = scalar(f, expected);
  if (!s) return std::nullopt;
  auto d = parse_duration(*s);
  if (!d) add(f, "expected " + std::string(expected) + ", got " + quote(*s));
  return d;
}

std::optional<std::size_t> reader::positive(const field& f) {
  auto s = scalar(f, "a positive integer");
  if (!s) return std::nullopt;
  auto n = parse_positive(*s);
  if (!n) add(f, "expected a positive integer, got " + quote(*s));
  return n;
}

std::optional<std::uint16_t> reader::port(const field& f) {
  auto s = scalar(f, "a port number 1-65535");
  if (!s) return std::nullopt;
  auto n = parse_port(*s);
  if (!n) add(f, "expected a port number 1-65535, got " + quote(*s));
  return n;
}

std::optional<bool> reader::boolean(const field& f) {
  auto s = scalar(f, "true or false");
  if (!s) return std::nullopt;
  bool value = false;
  if (!YAML::convert<bool>::decode(f.value, value)) {
    add(f, "expected true or false, got " + quote(*s));
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> reader::https_url(const field& f) {
  auto s = scalar(f, "an https:// URL");
  if (!s) return std::nullopt;
  constexpr std::string_view scheme = "https://";
  const bool ok = s->size() > scheme.size() && s->starts_with(scheme) &&
                  std::none_of(s->begin(), s->end(), [](char c) {
                    return static_cast<unsigned char>(c) <= ' ' || c == 0x7f;
                  });
  if (!ok) {
    add(f, "expected an https:// URL, got " + quote(*s));
    return std::nullopt;
  }
  return s;
}

void reader::read_listen(const mapping& top, settings& s) {
  const auto f = top.find("listen");
  if (!f) return;
  const auto items = list(*f, "address");
  if (!items) return;
  std::vector<listen_address> result;
  bool ok = true;
  for (const field& item : *items) {
    auto text = scalar(item, "\"IP:PORT\" or \"[IPv6]:PORT\"");
    if (!text) {
      ok = false;
      continue;
    }
    auto address = parse_listen(*text);
    if (!address) {
      add(item,
          "expected \"IP:PORT\" or \"[IPv6]:PORT\" with an IP address and a port 0-65535, got " +
              quote(*text));
      ok = false;
      continue;
    }
    // Port 0 entries each get their own free port, so they never collide.
    if (address->port != 0 && std::find(result.begin(), result.end(), *address) != result.end()) {
      add(item, quote(*text) + " is listed twice");
      ok = false;
      continue;
    }
    result.push_back(*address);
  }
  if (ok) s.listen = std::move(result);
}

void reader::read_hostname(const mapping& top, settings& s) {
  if (const auto f = top.find("hostname")) {
    auto name = scalar(*f, "a domain name");
    if (!name) return;
    if (!is_domain_name(*name)) {
      add(*f, "expected a domain name, got " + quote(*name));
      return;
    }
    s.hostname = *name;
    return;
  }
  s.hostname = host_name();
  if (!is_domain_name(s.hostname)) {
    add(position(),
        "hostname: not set, and this host's name " + quote(s.hostname) + " is not a domain name");
  }
}

void reader::read_clients(const mapping& top, settings& s) {
  s.clients_allow = {*parse_network("127.0.0.0/8"), *parse_network("::1/128")};
  const auto f = top.find("clients");
  if (!f) return;
  const mapping m(*this, *f, {"allow"});
  const auto allow = m.find("allow");
  if (!m.ok() || !allow) return;
  const auto items = list(*allow, "network");
  if (!items) return;
  std::vector<network> result;
  for (const field& item : *items) {
    static constexpr std::string_view expected = "a network like 127.0.0.0/8 or ::1/128";
    auto text = scalar(item, expected);
    if (!text) continue;
    if (auto net = parse_network(*text)) {
      result.push_back(std::move(*net));
    } else {
      add(item, "expected " + std::string(expected) + ", got " + quote(*text));
    }
  }
  if (result.size() == items->size()) s.clients_allow = std::move(result);
}

void reader::read_limits(const mapping& top, limits_settings& s) {
  const auto f = top.find("limits");
  if (!f) return;
  const mapping m(
      *this, *f,
      {"max_message_size", "max_recipients", "max_connections", "command_timeout", "data_timeout"});
  if (!m.ok()) return;
  if (const auto size = m.find("max_message_size")) {
    if (auto text = scalar(*size, "a size like 35M")) {
      if (auto bytes = parse_size(*text)) {
        s.max_message_size = *bytes;
      } else {
        add(*size, "expected a size like 35M, got " + quote(*text));
      }
    }
  }
  read_into(m, "max_recipients", s.max_recipients, &reader::positive);
  read_into(m, "max_connections", s.max_connections, &reader::positive);
  read_into(m, "command_timeout", s.command_timeout, &reader::duration);
  read_into(m, "data_timeout", s.data_timeout, &reader::duration);
}

void reader::read_upstream(const mapping& top, upstream_settings& s) {
  const auto f = top.find("upstream");
  if (!f) return;
  const mapping m(
      *this, *f,
      {"host", "port", "tls", "ca_file", "max_connections", "max_messages_per_connection"});
  if (!m.ok()) return;
  if (const auto host = m.find("host")) {
    static constexpr std::string_view expected = "a host name or IP address";
    if (auto text = scalar(*host, expected)) {
      std::string_view name = *text;
      // "[::1]" as in a URL is taken to mean ::1.
      const bool bracketed = name.size() > 2 && name.front() == '[' && name.back() == ']';
      if (bracketed) name = name.substr(1, name.size() - 2);
      const bool ip = parse_ip(name).has_value() && (!bracketed || name.find(':') != name.npos);
      if (ip || (!bracketed && is_domain_name(name))) {
        s.host = std::string(name);
      } else {
        add(*host, "expected " + std::string(expected) + ", got " + quote(*text));
      }
    }
  }
  read_into(m, "port", s.port, &reader::port);
  if (const auto tls = m.find("tls")) {
    if (auto text = scalar(*tls, "starttls or implicit")) {
      if (*text == "starttls") {
        s.tls = upstream_tls::starttls;
      } else if (*text == "implicit") {
        s.tls = upstream_tls::implicit;
      } else {
        add(*tls, quote(*text) +
                      " is not supported; expected starttls or implicit (nothing unencrypted "
                      "is supported)");
      }
    }
  }
  read_into(m, "ca_file", s.ca_file, &reader::readable_path_or_null);
  read_into(m, "max_connections", s.max_connections, &reader::positive);
  read_into(m, "max_messages_per_connection", s.max_messages_per_connection, &reader::positive);
}

void reader::read_queue(const mapping& top, queue_settings& s) {
  const auto f = top.find("queue");
  if (!f) return;
  const mapping m(*this, *f, {"retry_initial", "retry_max", "lifetime"});
  if (!m.ok()) return;
  const auto initial = m.find("retry_initial");
  const auto max = m.find("retry_max");
  bool ok = true;
  if (initial) {
    if (auto d = duration(*initial))
      s.retry_initial = *d;
    else
      ok = false;
  }
  if (max) {
    if (auto d = duration(*max))
      s.retry_max = *d;
    else
      ok = false;
  }
  read_into(m, "lifetime", s.lifetime, &reader::duration);
  if (ok && s.retry_max < s.retry_initial) {
    const field& at = max ? *max : *initial;
    add(at.where(), "queue.retry_max: expected at least queue.retry_initial (" +
                        seconds_text(s.retry_initial) + "), got " + seconds_text(s.retry_max));
  }
}

void reader::read_oauth(const mapping& top, oauth_settings& s) {
  const auto f = top.find("oauth");
  if (!f) {
    missing(top.self(), "\"oauth\"");
    return;
  }
  const mapping m(
      *this, *f,
      {"client_id", "client_secret", "client_secret_file", "auth_url", "token_url", "ca_file"});
  if (!m.ok()) return;
  if (const auto id = m.find("client_id")) {
    if (auto text = non_empty_string(*id)) s.client_id = *text;
  } else {
    missing(*f, "\"client_id\"");
  }

  const auto secret = m.find("client_secret");
  const auto secret_file = m.find("client_secret_file");
  if (secret && secret_file) {
    const field& later = secret->anchor < secret_file->anchor ? *secret_file : *secret;
    add(later.anchor,
        "oauth: client_secret and client_secret_file are both set; expected exactly one");
  } else if (secret) {
    // Never quote the value: it is the secret.
    if (!secret->value.IsScalar()) {
      add(*secret, "expected a string, got " + describe(secret->value));
    } else if (secret->value.Scalar().empty()) {
      add(*secret, "expected a non-empty string");
    } else {
      s.client_secret = secret->value.Scalar();
    }
  } else if (secret_file) {
    if (auto p = path(*secret_file)) {
      const file_contents contents = read_file(*p);
      std::string_view text = contents.text;
      while (!text.empty() &&
             std::string_view(" \t\r\n\f\v").find(text.back()) != std::string_view::npos) {
        text.remove_suffix(1);
      }
      if (contents.error != 0) {
        add(*secret_file,
            "cannot read " + printable(p->string()) + ": " + std::strerror(contents.error));
      } else if (text.empty()) {
        add(*secret_file, printable(p->string()) + " is empty");
      } else {
        s.client_secret = std::string(text);
        s.client_secret_file = *p;
      }
    }
  } else {
    missing(*f, "\"client_secret\" or \"client_secret_file\"");
  }

  read_into(m, "auth_url", s.auth_url, &reader::https_url);
  read_into(m, "token_url", s.token_url, &reader::https_url);
  read_into(m, "ca_file", s.ca_file, &reader::readable_path_or_null);
}

void reader::read_accounts(const mapping& top, std::vector<account_settings>& accounts) {
  const auto f = top.find("accounts");
  if (!f) {
    missing(top.self(), "\"accounts\"");
    return;
  }
  const auto items = list(*f, "account");
  if (!items) return;
  std::optional<std::size_t> default_index;
  std::vector<std::pair<std::string, std::size_t>> seen;  // lowercased address, index
  for (std::size_t index = 0; index < items->size(); ++index) {
    const field& item = (*items)[index];
    const mapping m(*this, item, {"address", "senders", "default"});
    if (!m.ok()) continue;
    if (item.value.IsNull()) {
      add(item, "expected a mapping, got nothing");
      continue;
    }
    account_settings account;
    bool ok = true;

    if (const auto address = m.find("address")) {
      if (auto text = scalar(*address, "an email address")) {
        if (!is_email_address(*text)) {
          add(*address, quote(*text) + " is not an email address");
          ok = false;
        } else {
          const std::string key = lowercase(*text);
          const auto earlier =
              std::find_if(seen.begin(), seen.end(), [&](const auto& e) { return e.first == key; });
          if (earlier != seen.end()) {
            add(*address,
                quote(*text) + " is already accounts[" + std::to_string(earlier->second) + "]");
            ok = false;
          } else {
            seen.emplace_back(key, index);
          }
          account.address = *text;
        }
      } else {
        ok = false;
      }
    } else {
      missing(item, "\"address\"");
      ok = false;
    }

    if (const auto is_default = m.find("default")) {
      if (auto value = boolean(*is_default)) {
        account.is_default = *value;
        if (*value && default_index) {
          add(*is_default, "accounts[" + std::to_string(*default_index) +
                               "] is already the default; at most one account may be default");
          ok = false;
        } else if (*value) {
          default_index = index;
        }
      } else {
        ok = false;
      }
    }

    if (const auto senders = m.find("senders")) {
      if (senders->value.IsSequence() && senders->value.size() == 0) {
        if (!account.is_default) {
          add(*senders,
              "expected at least one sender pattern (or default: true), got an empty list");
          ok = false;
        }
      } else if (const auto patterns = list(*senders, "sender pattern")) {
        for (const field& p : *patterns) {
          static constexpr std::string_view expected = "an address or a pattern like *@example.com";
          auto text = scalar(p, expected);
          if (text && is_sender_pattern(*text)) {
            account.senders.push_back(*text);
          } else {
            if (text) add(p, "expected " + std::string(expected) + ", got " + quote(*text));
            ok = false;
          }
        }
      } else {
        ok = false;
      }
    } else if (!account.is_default && !account.address.empty()) {
      // Without patterns an account sends only as itself.
      account.senders.push_back(account.address);
    }
    if (ok) accounts.push_back(std::move(account));
  }
}

// Where each document of a stream starts and where its root node is. Used
// instead of YAML::LoadAll, which in yaml-cpp 0.7 loops forever, allocating,
// when the parser cannot advance (a "," outside a flow collection:
// jbeder/yaml-cpp#1040, fixed upstream after 0.8.0): a document that begins
// where the previous one began means the parser is stuck.
class document_marks : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  std::vector<YAML::Mark> roots;

  void OnDocumentStart(const YAML::Mark& mark) override {
    starts.push_back(mark);
    root_seen_ = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { node(mark); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    node(mark);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    node(mark);
  }
  void OnMapEnd() override {}

  bool stuck() const {
    const std::size_t n = starts.size();
    return n >= 2 && starts[n - 1].pos == starts[n - 2].pos;
  }

 private:
  void node(const YAML::Mark& mark) {
    if (!root_seen_) roots.push_back(mark);
    root_seen_ = true;
  }
  bool root_seen_ = false;
};

position position_of(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

load_result reader::run(const std::string& text) {
  load_result result;
  document_marks documents;
  YAML::Node first;
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    while (parser.HandleNextDocument(documents) && !documents.stuck()) {
    }
    if (documents.stuck()) {
      const YAML::Mark at = documents.starts.back();
      const std::size_t offset = static_cast<std::size_t>(at.pos);
      add(position_of(at), "invalid YAML: unexpected " +
                               quote(offset < text.size() ? text.substr(offset, 1) : "") +
                               " outside a flow collection");
      result.errors = std::move(errors_);
      return result;
    }
    first = YAML::Load(text);  // the first document, the only one that counts
  } catch (const YAML::Exception& e) {
    // yaml-cpp quotes the octet it choked on as it is (a CR, say).
    add(position_of(e.mark), "invalid YAML: " + printable(e.msg));
    result.errors = std::move(errors_);
    return result;
  }
  if (documents.starts.size() > 1) {
    add(position_of(documents.roots.size() > 1 ? documents.roots[1] : documents.starts[1]),
        "expected one YAML document, found " + std::to_string(documents.starts.size()));
  }
  const field root{"", {1, 1}, first};
  if (!root.value.IsNull() && !root.value.IsMap()) {
    add(root.where(), "expected a mapping of settings, got " + describe(root.value));
    result.errors = std::move(errors_);
    return result;
  }

  settings s;
  s.source = file_;
  const mapping top(*this, root,
                    {"listen", "hostname", "state_dir", "health_socket", "clients", "limits",
                     "upstream", "queue", "oauth", "accounts"});
  read_listen(top, s);
  read_hostname(top, s);
  read_into(top, "state_dir", s.state_dir, &reader::path);
  read_into(top, "health_socket", s.health_socket, &reader::path);
  read_clients(top, s);
  read_limits(top, s.limits);
  read_upstream(top, s.upstream);
  read_queue(top, s.queue);
  read_oauth(top, s.oauth);
  read_accounts(top, s.accounts);

  std::stable_sort(errors_.begin(), errors_.end(), [](const error& a, const error& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  result.errors = std::move(errors_);
  if (result.errors.empty()) result.value = std::move(s);
  return result;
}

fs::path directory_of(const std::string& name) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(name.empty() ? fs::path(".") : fs::path(name), ec);
  if (ec) return fs::path(name).parent_path();
  return absolute.parent_path();
}

}  // namespace

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

std::string error::to_string() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

load_result load(const std::filesystem::path& path) {
  const file_contents contents = read_file(path);
  if (contents.error != 0) {
    load_result result;
    result.errors.push_back(
        error{path.string(), 0, 0, std::string("cannot read: ") + std::strerror(contents.error)});
    return result;
  }
  load_result result = parse(contents.text, path.string());
  // The daemon re-reads this on SIGHUP, possibly from another directory.
  std::error_code ec;
  if (result.value) result.value->source = fs::absolute(path, ec);
  return result;
}

load_result parse(const std::string& yaml_text, const std::string& name) {
  return reader(name, directory_of(name)).run(yaml_text);
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
  std::uint64_t count = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || count == 0 ||
      count > max_duration_seconds / unit) {
    return std::nullopt;
  }
  return std::chrono::seconds(static_cast<std::chrono::seconds::rep>(count * unit));
}

// Zero is refused too: no message fits in it.
std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t unit = 1;
  if (!text.empty() && (text.back() == 'K' || text.back() == 'M')) {
    unit = text.back() == 'K' ? 1024 : 1024 * 1024;
    text.remove_suffix(1);
  }
  std::uint64_t count = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || count == 0 ||
      count > std::numeric_limits<std::uint64_t>::max() / unit) {
    return std::nullopt;
  }
  return count * unit;
}

}  // namespace oauth_relay::config
