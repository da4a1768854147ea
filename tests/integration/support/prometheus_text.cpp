// Line-by-line parser for the Prometheus text format; see the header for the
// rules it enforces.
#include "integration/support/prometheus_text.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>

namespace oauth_relay::test_support {
namespace {

[[noreturn]] void fail(std::size_t line, const std::string& what) {
  throw std::runtime_error("line " + std::to_string(line) + ": " + what);
}

bool metric_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool ok = std::isalpha(c) || c == '_' || c == ':' || (i > 0 && std::isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool label_name(std::string_view s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool ok = std::isalpha(c) || c == '_' || (i > 0 && std::isdigit(c));
    if (!ok) return false;
  }
  return true;
}

double parse_value(std::string_view text, std::size_t line) {
  if (text == "+Inf") return INFINITY;
  if (text == "-Inf") return -INFINITY;
  if (text == "NaN") return NAN;
  if (text.empty()) fail(line, "missing value");
  for (char c : text) {
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'e' || c == 'E' ||
          c == '+' || c == '-'))
      fail(line, "bad value \"" + std::string(text) + "\"");
  }
  const std::string copy(text);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) fail(line, "bad value \"" + copy + "\"");
  return v;
}

std::string unescape_help(std::string_view s, std::size_t line) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\') {
      out += s[i];
      continue;
    }
    if (i + 1 >= s.size()) fail(line, "dangling backslash in HELP");
    const char n = s[++i];
    if (n == '\\') {
      out += '\\';
    } else if (n == 'n') {
      out += '\n';
    } else {
      fail(line, std::string("bad escape \\") + n + " in HELP");
    }
  }
  return out;
}

// The family a sample name belongs to, given the family being read.
bool belongs(const prom_family& f, const std::string& sample) {
  if (f.type == "histogram") {
    return sample == f.name + "_bucket" || sample == f.name + "_sum" || sample == f.name + "_count";
  }
  if (f.type == "summary") {
    return sample == f.name || sample == f.name + "_sum" || sample == f.name + "_count";
  }
  return sample == f.name;
}

void check_histogram(const prom_family& f) {
  // Group by the labels other than le.
  struct series {
    std::vector<std::pair<double, double>> buckets;  // le, count
    bool has_sum = false;
    bool has_count = false;
    double count = 0;
  };
  std::map<std::map<std::string, std::string>, series> by_labels;
  for (const auto& s : f.samples) {
    auto labels = s.labels;
    if (s.name == f.name + "_bucket") {
      auto le = labels.find("le");
      if (le == labels.end()) throw std::runtime_error(f.name + ": bucket without le");
      const double bound = parse_value(le->second, 0);
      labels.erase(le);
      by_labels[labels].buckets.emplace_back(bound, s.value);
    } else if (s.name == f.name + "_sum") {
      if (labels.count("le")) throw std::runtime_error(f.name + "_sum has an le label");
      by_labels[labels].has_sum = true;
    } else {
      if (labels.count("le")) throw std::runtime_error(f.name + "_count has an le label");
      by_labels[labels].has_count = true;
      by_labels[labels].count = s.value;
    }
  }
  if (by_labels.empty()) throw std::runtime_error(f.name + ": histogram without samples");
  for (const auto& [labels, s] : by_labels) {
    if (s.buckets.empty()) throw std::runtime_error(f.name + ": no buckets");
    if (!s.has_sum || !s.has_count) throw std::runtime_error(f.name + ": missing _sum or _count");
    for (std::size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i].first > s.buckets[i - 1].first))
        throw std::runtime_error(f.name + ": le bounds not increasing");
      if (s.buckets[i].second < s.buckets[i - 1].second)
        throw std::runtime_error(f.name + ": bucket counts decrease");
    }
    if (!std::isinf(s.buckets.back().first) || s.buckets.back().first < 0)
      throw std::runtime_error(f.name + ": last bucket is not le=\"+Inf\"");
    if (s.buckets.back().second != s.count)
      throw std::runtime_error(f.name + ": +Inf bucket differs from _count");
  }
}

}  // namespace

const prom_family* prom_exposition::family(std::string_view name) const {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

double prom_exposition::value(std::string_view name,
                              const std::map<std::string, std::string>& labels) const {
  for (const auto& f : families) {
    for (const auto& s : f.samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
  }
  std::string text(name);
  for (const auto& [k, v] : labels) text += " " + k + "=" + v;
  throw std::runtime_error("no sample " + text);
}

prom_exposition parse_prometheus(std::string_view text) {
  prom_exposition out;
  std::set<std::string> seen_families;
  std::set<std::string> seen_samples;
  prom_family* current = nullptr;
  bool help_done = false;
  bool type_done = false;
  if (!text.empty() && text.back() != '\n') fail(0, "the text does not end with a line feed");
  std::size_t number = 0;
  while (!text.empty()) {
    ++number;
    const auto eol = text.find('\n');
    std::string_view line = text.substr(0, eol);
    text.remove_prefix(eol + 1);
    if (line.empty()) fail(number, "blank line");
    if (line.find('\r') != std::string_view::npos) fail(number, "carriage return");

    if (line.rfind("# HELP ", 0) == 0) {
      auto rest = line.substr(7);
      const auto space = rest.find(' ');
      if (space == std::string_view::npos) fail(number, "HELP without text");
      const std::string name(rest.substr(0, space));
      if (!metric_name(name)) fail(number, "bad metric name " + name);
      if (!seen_families.insert(name).second) fail(number, "second HELP for " + name);
      out.families.push_back({name, "", unescape_help(rest.substr(space + 1), number), {}});
      current = &out.families.back();
      help_done = true;
      type_done = false;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      auto rest = line.substr(7);
      const auto space = rest.find(' ');
      if (space == std::string_view::npos) fail(number, "TYPE without a type");
      const std::string name(rest.substr(0, space));
      const std::string type(rest.substr(space + 1));
      if (!current || current->name != name || !help_done)
        fail(number, "TYPE for " + name + " not right after its HELP");
      if (type_done) fail(number, "second TYPE for " + name);
      if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
          type != "untyped")
        fail(number, "unknown type " + type);
      current->type = type;
      type_done = true;
      continue;
    }
    if (line[0] == '#') fail(number, "comment that is neither HELP nor TYPE");

    // A sample: name, optional {labels}, space, value, optional timestamp.
    std::size_t at = 0;
    while (at < line.size() && line[at] != '{' && line[at] != ' ') ++at;
    prom_sample sample;
    sample.name = std::string(line.substr(0, at));
    if (!metric_name(sample.name)) fail(number, "bad metric name " + sample.name);
    if (!current || !type_done) fail(number, sample.name + " has no HELP and TYPE before it");
    if (!belongs(*current, sample.name))
      fail(number, sample.name + " does not belong to family " + current->name);
    if (at < line.size() && line[at] == '{') {
      ++at;
      if (at < line.size() && line[at] == '}') {
        ++at;  // an empty label set
      } else {
        for (;;) {
          const auto eq = line.find('=', at);
          if (eq == std::string_view::npos) fail(number, "label without =");
          const std::string name(line.substr(at, eq - at));
          if (!label_name(name)) fail(number, "bad label name \"" + name + "\"");
          at = eq + 1;
          if (at >= line.size() || line[at] != '"') fail(number, "label value not quoted");
          ++at;
          std::string value;
          for (;;) {
            if (at >= line.size()) fail(number, "unterminated label value");
            const char c = line[at++];
            if (c == '"') break;
            if (c != '\\') {
              value += c;
              continue;
            }
            if (at >= line.size()) fail(number, "dangling backslash in label value");
            const char n = line[at++];
            if (n == '\\') {
              value += '\\';
            } else if (n == '"') {
              value += '"';
            } else if (n == 'n') {
              value += '\n';
            } else {
              fail(number, std::string("bad escape \\") + n + " in label value");
            }
          }
          if (!sample.labels.emplace(name, value).second) fail(number, "duplicate label " + name);
          if (at < line.size() && line[at] == ',') {
            ++at;
            if (at < line.size() && line[at] == '}') fail(number, "trailing comma in label set");
            continue;
          }
          if (at >= line.size() || line[at] != '}') fail(number, "expected , or } after a label");
          ++at;
          break;
        }
      }
    }
    if (at >= line.size() || line[at] != ' ') fail(number, "no space before the value");
    auto rest = line.substr(at + 1);
    const auto space = rest.find(' ');
    sample.value = parse_value(rest.substr(0, space), number);
    if (space != std::string_view::npos) {
      const auto ts = rest.substr(space + 1);
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string_view::npos)
        fail(number, "bad timestamp");
    }
    if (current->type == "counter" && !(sample.value >= 0))
      fail(number, "counter " + sample.name + " is negative or NaN");
    std::string key = sample.name;
    for (const auto& [k, v] : sample.labels) key += "\x1f" + k + "=" + v;
    if (!seen_samples.insert(key).second) fail(number, "duplicate sample " + sample.name);
    current->samples.push_back(std::move(sample));
  }
  for (const auto& f : out.families) {
    if (f.type.empty()) throw std::runtime_error(f.name + ": HELP without TYPE");
    if (f.type == "histogram") check_histogram(f);
  }
  return out;
}

}  // namespace oauth_relay::test_support
