// The whole fork contract between the supervisor and a child: what it is, what it owns.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/unique_fd.hpp"
#include "shm/control.hpp"
#include "supervisor/config.hpp"

namespace polymur {

enum class Role { listener, output };

// A child that exits with this code has a problem restarting cannot fix (sysexits EX_CONFIG).
inline constexpr int kExitDoNotRestart = 78;
inline constexpr int kExitCrashed = 70;

struct Heritage {
    Role role = Role::listener;
    uint32_t index = 0;  // listener: worker slot; output: destination slot
    int listen_fd = -1;  // listener only
    shm::ControlSegment* control = nullptr;
    const Config* config = nullptr;
    pid_t supervisor_pid = 0;
};

int run_listener(const Heritage& heritage);
int run_output(const Heritage& heritage);

// The queue file of a destination, named after it so a restart finds it again.
std::string queue_path(const std::string& state_dir, const std::string& destination);

// Takes an exclusive flock on `path`, waiting (and saying so once) while another process holds
// it. `who` names the waiter in the log. Returns the locked fd, or an invalid one on error.
UniqueFd lock_file(const std::string& path, const std::string& who);

}  // namespace polymur
