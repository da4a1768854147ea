// The registry of the config file's sections, in reading order, and the
// reading of a whole document: the top-level keys, each section, the errors sorted.
#include "config/schema.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace oauth_relay::config {

// How to add a section (say `tls:`):
//  1. config.hpp: a `tls_settings` struct with its defaults, and a `tls` member of `settings`.
//  2. config/sections/tls.cpp: `extern const section tls_section{keys, read};` with `keys` the
//     top-level keys it owns and `read` reading them with the reader's typed readers
//     (config/yaml_reader.hpp) and the text checks of config/validators.hpp. CMake finds the
//     file by itself.
//  3. Here: its name in the declaration and in `all_sections`, where it should be read.
// The order decides which of two errors at one position comes first (a missing key is
// reported at its parent) and which of two equally close keys "did you mean" names; a
// section added at the end changes neither for the sections already there.
extern const section listen_section, paths_section, clients_section, limits_section,
    upstream_section, queue_section, oauth_section, accounts_section, secrets_section, tls_section,
    local_addresses_section, providers_section;

namespace {

// providers comes before accounts: an account's provider and app_only are
// checked against it.
constexpr const section* all_sections[] = {
    &listen_section,   &paths_section,   &clients_section, &limits_section,
    &upstream_section, &queue_section,   &oauth_section,   &providers_section,
    &accounts_section, &secrets_section, &tls_section,     &local_addresses_section,
};

}  // namespace

load_result read_settings(reader& r, const std::string& text) {
  load_result result;
  const auto root = r.document(text);
  if (!root) {
    // In the order found: the only error, or a second document before a root that is no mapping.
    result.errors = r.take_errors();
    return result;
  }
  std::vector<std::string_view> keys;
  for (const section* s : all_sections) keys.insert(keys.end(), s->keys.begin(), s->keys.end());

  settings s;
  s.source = r.file();
  const mapping top(r, *root, keys);
  for (const section* each : all_sections) each->read(r, top, s);

  result.errors = r.take_errors();
  std::stable_sort(result.errors.begin(), result.errors.end(), [](const error& a, const error& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  if (result.errors.empty()) result.value = std::move(s);
  return result;
}

}  // namespace oauth_relay::config
