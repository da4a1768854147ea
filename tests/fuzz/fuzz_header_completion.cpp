// libFuzzer target for the header completion (relay/smtp/header_completion):
// the first octets choose a chunking, the rest is a message. Fed in pieces it
// must give what it gives fed whole; the output less what was inserted must
// be the input; and what was inserted is whole field lines, nothing else.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "relay/smtp/header_completion.hpp"

namespace smtp = oauth_relay::smtp;

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

struct outcome {
  std::string out;
  unsigned added = 0;
  std::size_t at = 0;
  std::size_t size = 0;
  bool operator==(const outcome&) const = default;
};

outcome complete(std::string_view input, std::string_view chunks) {
  smtp::header_completion h({"D", "<M@h>", "F@h"});
  outcome o;
  std::size_t offset = 0;
  for (std::size_t k = 0; offset < input.size(); ++k) {
    std::size_t length = input.size();
    if (!chunks.empty()) length = static_cast<unsigned char>(chunks[k % chunks.size()]) % 64 + 1;
    length = std::min(length, input.size() - offset);
    h.feed(input.substr(offset, length), o.out);
    offset += length;
  }
  h.finish(o.out);
  check(h.passing_through());
  o.added = h.added();
  o.at = h.inserted_at();
  o.size = h.inserted_size();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk_octets = std::min<std::size_t>(data[0] % 8, size - 1);
  const std::string_view chunks(reinterpret_cast<const char*>(data + 1), chunk_octets);
  const std::string_view input(reinterpret_cast<const char*>(data + 1 + chunk_octets),
                               size - 1 - chunk_octets);
  const outcome whole = complete(input, {});
  check(complete(input, chunks) == whole);

  check(whole.out.size() == input.size() + whole.size);
  check((whole.size == 0) == (whole.added == 0));
  check(whole.out.compare(0, whole.at, input.substr(0, whole.at)) == 0);
  check(whole.out.compare(whole.at + whole.size, std::string::npos, input.substr(whole.at)) == 0);
  std::string expected;
  if (whole.at > 0 && whole.out[whole.at - 1] != '\n') expected = "\r\n";
  if (whole.added & smtp::header_completion::date) expected += "Date: D\r\n";
  if (whole.added & smtp::header_completion::message_id) expected += "Message-ID: <M@h>\r\n";
  if (whole.added & smtp::header_completion::from) expected += "From: F@h\r\n";
  const std::string inserted = whole.out.substr(whole.at, whole.size);
  check(inserted == expected || inserted == expected + "\r\n");
  return 0;
}
