// The daemon process around the relay: the event loop, systemd's notify
// protocol and watchdog, signals (SIGTERM stop, SIGHUP reload) and socket
// activation.
#pragma once

#include <filesystem>

#include "config/config.hpp"

namespace oauth_relay::daemon {

// Runs until SIGTERM/SIGINT; returns the process exit status.
int run(const std::filesystem::path& config_path, config::settings settings);

}  // namespace oauth_relay::daemon
