// The config file's schema: its sections (config/sections/, one file each)
// and reading a whole document with them.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace oauth_relay::config {

// One part of the file: the top-level keys it owns and how it reads them
// into the settings. A section reports its own errors, fills in its
// defaults, and leaves a value at its default when the file's is wrong.
struct section {
  std::span<const std::string_view> keys;
  void (*read)(reader& r, const mapping& top, settings& s);
};

// The settings in `text` with every section read, or the errors in file order.
load_result read_settings(reader& r, const std::string& text);

}  // namespace oauth_relay::config
