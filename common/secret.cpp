// explicit_bzero (glibc) rather than OPENSSL_cleanse: the same guarantee
// without making the common library depend on OpenSSL.
#include "common/secret.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>

namespace oauth_relay {

void wipe(std::string& s) noexcept {
  // Growing to the capacity is not an allocation, and makes every byte that
  // ever held part of the secret addressable.
  s.resize(s.capacity());
  ::explicit_bzero(s.data(), s.size());
  s.clear();
}

std::string disable_core_dumps() {
  const rlimit none{0, 0};
  if (::setrlimit(RLIMIT_CORE, &none) != 0) {
    return std::string("setrlimit(RLIMIT_CORE, 0): ") + std::strerror(errno);
  }
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return std::string("prctl(PR_SET_DUMPABLE, 0): ") + std::strerror(errno);
  }
  return {};
}

}  // namespace oauth_relay
