// Queue ids: 16 lowercase hex digits, random, so ids never repeat across
// restarts and say nothing about traffic volume.
#pragma once

#include <string>

namespace oauth_relay::relay {

std::string new_message_id();

}  // namespace oauth_relay::relay
