// What a child of the supervisor runs right after fork (as Varnish's child_main): it drops what it
// inherited but does not own, takes its name, and runs its role until it exits. It never returns.
#pragma once

#include <span>
#include <string>

#include "common/heritage.hpp"

namespace polymur {

// `name` is the child's subject in logs and ps ("listener 0", "output host:port"); `handled_signals`
// the signals the supervisor's loop handles, reset to their defaults here. Every descriptor but the
// standard ones and those of `heritage` is closed. Exits with the role's code, kExitCrashed after an
// exception, kExitDoNotRestart if the control segment fails its check, 0 if the supervisor is gone.
[[noreturn]] void child_main(const Heritage& heritage, const std::string& name, std::span<const int> handled_signals);

}  // namespace polymur
