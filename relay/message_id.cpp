// Random 64-bit queue ids from a per-thread generator seeded by the OS.
#include "relay/message_id.hpp"

#include <random>

namespace oauth_relay::relay {

std::string new_message_id() {
  thread_local std::mt19937_64 generator{[] {
    std::random_device device;
    return (static_cast<std::uint64_t>(device()) << 32) ^ device();
  }()};
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t value = generator();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4) id[static_cast<std::size_t>(i)] = hex[value & 0xf];
  return id;
}

}  // namespace oauth_relay::relay
