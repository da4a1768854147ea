// The YAML walker under the config schema: positions, named fields, mappings
// that report unknown and duplicate keys, and typed readers that report their own errors.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "config/config.hpp"

namespace oauth_relay::config {

struct position {
  int line = 0;  // 1-based; 0 when unknown
  int column = 0;
  friend auto operator<=>(const position&, const position&) = default;
};

position position_of(const YAML::Node& node);
position position_of(const YAML::Mark& mark);

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

// A value for a message: quoted, escaped, and cut when long.
std::string quote(std::string_view value);
// What a node is, for "expected X, got ...": a list, a mapping, nothing or the quoted scalar.
std::string describe(const YAML::Node& node);

struct file_contents {
  std::string text;
  int error = 0;  // errno when the file could not be read
};
// The whole file, refused (EFBIG) past a size no config, secret or CA file has.
file_contents read_file(const std::filesystem::path& path);

class reader;

// The entries of one mapping; unknown and duplicate keys are reported when it
// is built, so every key in the file is checked even if nothing asks for it.
// `known` is also the order in which suggestions for a misspelt key are tried.
class mapping {
 public:
  mapping(reader& r, const field& self, std::span<const std::string_view> known);
  mapping(reader& r, const field& self, std::initializer_list<std::string_view> known)
      : mapping(r, self, std::span(known.begin(), known.size())) {}
  bool ok() const { return ok_; }
  std::optional<field> find(std::string_view key) const;
  const field& self() const { return self_; }

 private:
  field self_;
  bool ok_ = false;
  std::vector<std::pair<std::string, field>> entries_;
};

// Collects every problem of one file instead of stopping at the first.
class reader {
 public:
  reader(std::string file, std::filesystem::path base_dir)
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  const std::string& file() const { return file_; }

  void add(position p, std::string message) {
    errors_.push_back(error{file_, p.line, p.column, std::move(message)});
  }
  void add(const field& f, std::string_view message) {
    add(f.where(), f.prefix() + std::string(message));
  }
  void missing(const field& parent, std::string_view what) {
    add(parent.anchor, parent.prefix() + "missing required key " + std::string(what));
  }
  // The errors so far, in the order they were found.
  std::vector<error> take_errors() { return std::move(errors_); }

  // The first YAML document of `text` as a mapping (or null) at the root; nothing,
  // with the reason added, when the text is not YAML or its root is something else.
  std::optional<field> document(const std::string& text);

  // Typed readers: each reports its own error and returns nullopt on failure.
  std::optional<std::string> scalar(const field& f, std::string_view expected);
  std::optional<std::string> non_empty_string(const field& f);
  std::optional<std::vector<field>> list(const field& f, std::string_view expected_items);
  std::optional<std::filesystem::path> path(const field& f);
  std::optional<std::optional<std::filesystem::path>> readable_path_or_null(const field& f);
  // The content of the file `f` names (its path already read from it).
  std::optional<std::string> file_text(const field& f, const std::filesystem::path& p);
  // Whether that file can be opened for reading, without reading it (a private key).
  bool readable(const field& f, const std::filesystem::path& p);
  std::optional<std::chrono::seconds> duration(const field& f);
  std::optional<std::size_t> positive(const field& f);
  std::optional<std::uint16_t> port(const field& f);
  std::optional<bool> boolean(const field& f);
  std::optional<std::string> https_url(const field& f);

  // A scalar that `parse` (text -> optional value) accepts; otherwise
  // "expected EXPECTED, got ..." at the field.
  template <typename Parse>
  auto parsed(const field& f, std::string_view expected, Parse parse)
      -> decltype(parse(std::string_view())) {
    const auto text = scalar(f, expected);
    if (!text) return std::nullopt;
    auto value = parse(std::string_view(*text));
    if (!value) add(f, "expected " + std::string(expected) + ", got " + quote(*text));
    return value;
  }

  // A scalar that `check` accepts, as written; otherwise as parsed().
  std::optional<std::string> checked(const field& f, std::string_view expected,
                                     bool (*check)(std::string_view)) {
    return parsed(f, expected, [&](std::string_view s) {
      return check(s) ? std::optional<std::string>(s) : std::nullopt;
    });
  }

  // m[key] read with `read` (one of the typed readers) into `out`, which
  // keeps its default when the key is absent or its value is wrong.
  template <typename T, typename Read>
  void read_into(const mapping& m, std::string_view key, T& out, Read read) {
    if (auto f = m.find(key)) {
      if (auto v = (this->*read)(*f)) out = std::move(*v);
    }
  }

 private:
  std::string file_;
  std::filesystem::path base_dir_;
  std::vector<error> errors_;
};

}  // namespace oauth_relay::config
