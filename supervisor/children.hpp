// The supervisor's children as its files share them: their names in logs, and the signals the
// supervisor handles (reset to their defaults in every child).
#pragma once

#include <signal.h>

#include <cstdint>
#include <string>

#include "common/heritage.hpp"

namespace polymur {

inline constexpr int kHandledSignals[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP};

// "listener 3", "output 10.0.0.1:2003": the subject of every log line about a child.
std::string child_name(Role role, uint32_t index, const std::string& text);

}  // namespace polymur
