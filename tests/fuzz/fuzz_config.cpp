// libFuzzer target for the config loader: any bytes as the content of the
// YAML file give either settings or errors, each one line with the file's
// name and a position inside the text; never an exception, crash or hang.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.hpp"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const auto result = oauth_relay::config::parse(text, "fuzz.yaml");
  check(result.value.has_value() != !result.errors.empty());
  const auto lines = 1 + std::count(text.begin(), text.end(), '\n');
  for (const auto& e : result.errors) {
    check(e.file == "fuzz.yaml");
    check(!e.message.empty());
    check(e.message.find('\n') == std::string::npos && e.message.find('\r') == std::string::npos);
    check(e.line >= 0 && e.column >= 0 && e.line <= lines + 1);
    check((e.line == 0) == (e.column == 0));
  }
  return 0;
}
