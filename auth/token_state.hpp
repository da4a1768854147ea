// An account's token state, as stored in queue.db and shown by
// `oauth-relayctl accounts` and the health socket.
#pragma once

#include <optional>
#include <string_view>

namespace oauth_relay::auth {

enum class token_state { valid, expired, needs_reauth, refresh_failing, missing };

std::string_view to_string(token_state);
std::optional<token_state> parse_token_state(std::string_view);

}  // namespace oauth_relay::auth
