// The YAML walker: reads the document, names and places every value, and
// turns each wrong key, type or value into a positioned error.
#include "config/yaml_reader.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

#include "common/text.hpp"
#include "config/validators.hpp"

namespace oauth_relay::config {
namespace {

namespace fs = std::filesystem;

// Unknown keys within this edit distance of a known one get a suggestion.
constexpr std::size_t max_suggestion_distance = 2;
// Values quoted in messages are cut here so one line stays one line.
constexpr std::size_t max_quoted_length = 60;
// Config, secret and CA files are read whole. A system CA bundle is a few
// hundred KB; anything past this is a mistake (/dev/zero, a log file) that
// would otherwise be read until memory runs out.
constexpr std::size_t max_file_size = 16 * 1024 * 1024;

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

}  // namespace

position position_of(const YAML::Node& node) {
  return position_of(node.Mark());
}

position position_of(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return {mark.line + 1, mark.column + 1};
}

std::string quote(std::string_view value) {
  const std::size_t shown = std::min(value.size(), max_quoted_length);
  return "\"" + escaped(value.substr(0, shown), "\"\\") + (shown < value.size() ? "..." : "") +
         "\"";
}

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

mapping::mapping(reader& r, const field& self, std::span<const std::string_view> known)
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

std::optional<field> mapping::find(std::string_view key) const {
  for (const auto& [name, f] : entries_) {
    if (name == key) return f;
  }
  return std::nullopt;
}

std::optional<field> reader::document(const std::string& text) {
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
      return std::nullopt;
    }
    first = YAML::Load(text);  // the first document, the only one that counts
  } catch (const YAML::Exception& e) {
    // yaml-cpp quotes the octet it choked on as it is (a CR, say).
    add(position_of(e.mark), "invalid YAML: " + escaped(e.msg));
    return std::nullopt;
  }
  if (documents.starts.size() > 1) {
    add(position_of(documents.roots.size() > 1 ? documents.roots[1] : documents.starts[1]),
        "expected one YAML document, found " + std::to_string(documents.starts.size()));
  }
  field root{"", {1, 1}, first};
  if (!root.value.IsNull() && !root.value.IsMap()) {
    add(root.where(), "expected a mapping of settings, got " + describe(root.value));
    return std::nullopt;
  }
  return root;
}

std::optional<std::string> reader::scalar(const field& f, std::string_view expected) {
  if (!f.value.IsScalar()) {
    add(f, "expected " + std::string(expected) + ", got " + describe(f.value));
    return std::nullopt;
  }
  return f.value.Scalar();
}

std::optional<std::string> reader::non_empty_string(const field& f) {
  return checked(f, "a non-empty string", [](std::string_view s) { return !s.empty(); });
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
  return parsed(f, "a path", [&](std::string_view s) -> std::optional<fs::path> {
    if (s.empty() || s.find('\0') != std::string_view::npos) return std::nullopt;
    const fs::path p(s);
    return (p.is_absolute() ? p : base_dir_ / p).lexically_normal();
  });
}

std::optional<std::optional<fs::path>> reader::readable_path_or_null(const field& f) {
  if (f.value.IsNull()) return std::optional<fs::path>();
  auto p = path(f);
  if (!p || !file_text(f, *p)) return std::nullopt;
  return std::optional<fs::path>(*p);
}

std::optional<std::string> reader::file_text(const field& f, const fs::path& p) {
  file_contents contents = read_file(p);
  if (contents.error != 0) {
    add(f, "cannot read " + escaped(p.string()) + ": " + std::strerror(contents.error));
    return std::nullopt;
  }
  return std::move(contents.text);
}

bool reader::readable(const field& f, const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    add(f, "cannot read " + escaped(p.string()) + ": " + std::strerror(errno));
    return false;
  }
  ::close(fd);
  return true;
}

std::optional<std::chrono::seconds> reader::duration(const field& f) {
  return parsed(f, "a duration like 60s, 5m, 1h or 5d", parse_duration);
}

std::optional<std::size_t> reader::positive(const field& f) {
  return parsed(f, "a positive integer", parse_positive);
}

std::optional<std::uint16_t> reader::port(const field& f) {
  return parsed(f, "a port number 1-65535", parse_port);
}

std::optional<bool> reader::boolean(const field& f) {
  // YAML's spellings (true, True, yes, on, ...), as yaml-cpp decodes them.
  return parsed(f, "true or false", [&](std::string_view) {
    bool value = false;
    return YAML::convert<bool>::decode(f.value, value) ? std::optional<bool>(value) : std::nullopt;
  });
}

std::optional<std::string> reader::https_url(const field& f) {
  return checked(f, "an https:// URL", is_https_url);
}

}  // namespace oauth_relay::config
