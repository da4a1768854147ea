// `oauth-relayctl aliases`: the local domains and the alias table as the
// daemon resolves them (from `aliases` and aliases_file), each alias with
// the real addresses its mail goes to and where it was written.
#pragma once

#include "ctl/common.hpp"

namespace oauth_relay::ctl {

// 0, or 1 with the problems on standard error when the table is refused.
int run_aliases(const context& ctx, bool json);

}  // namespace oauth_relay::ctl
