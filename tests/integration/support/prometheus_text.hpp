// A strict reader of the Prometheus text exposition format 0.0.4 for tests:
// anything a scraper could misread is an error, not a guess.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace oauth_relay::test_support {

struct prom_sample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

struct prom_family {
  std::string name;
  std::string type;  // counter, gauge, histogram, summary, untyped
  std::string help;  // unescaped
  std::vector<prom_sample> samples;
};

struct prom_exposition {
  std::vector<prom_family> families;  // in order of appearance
  const prom_family* family(std::string_view name) const;
  // The value of the sample `name` with exactly `labels`; throws when absent.
  double value(std::string_view name, const std::map<std::string, std::string>& labels = {}) const;
};

// Throws std::runtime_error("line N: ...") when `text` breaks a rule:
// - every line ends with LF; no CR, no blank line, no comment but HELP/TYPE;
// - each family has exactly one HELP then one TYPE, both before its samples,
//   and its samples follow them without another family in between;
// - sample names belong to the family (histogram: _bucket, _sum, _count);
// - metric and label names are valid, label values use only \\ \" \n
//   escapes, no duplicate label, no duplicate sample;
// - values parse as floats (+Inf, -Inf, NaN allowed); counters are >= 0;
// - histograms: per label set, `le` buckets strictly increasing, counts
//   non-decreasing, a +Inf bucket last that equals _count, and a _sum.
prom_exposition parse_prometheus(std::string_view text);

}  // namespace oauth_relay::test_support
