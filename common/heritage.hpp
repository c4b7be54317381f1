// The whole fork contract between the supervisor and a child: what it is, what it owns.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/config.hpp"
#include "common/destination_spec.hpp"
#include "common/unique_fd.hpp"
#include "shm/control.hpp"
#include "shm/queue.hpp"

namespace polymur {

namespace route {
class RoutingTable;
}

enum class Role { listener, output, aggregator };

// A child that exits with this code has a problem restarting cannot fix (sysexits EX_CONFIG).
inline constexpr int kExitDoNotRestart = 78;
inline constexpr int kExitCrashed = 70;

struct Heritage {
    Role role = Role::listener;
    uint32_t index = 0;  // listener: worker slot; output: destination slot
    int listen_fd = -1;  // listener only: plaintext metrics (-1: none)
    int https_fd = -1;   // listener only: HTTPS ingest (-1: none)
    int http_fd = -1;    // listener only: plain-HTTP ingest (-1: none)
    int pickle_fd = -1;  // listener only: carbon's pickle protocol (-1: none)
    int tls_fd = -1;     // listener only: plaintext lines over TLS (-1: none)
    int udp_fd = -1;     // listener only: plaintext lines over UDP, one socket shared by every worker (-1: none)
    shm::ControlSegment* control = nullptr;
    const Config* config = nullptr;
    // --rules: the table (built by the supervisor; after the fork each process's own copy, which follows the
    // runtime cluster membership, route/cluster_membership.hpp); nullptr: implicit.
    route::RoutingTable* rules = nullptr;
    // output only: the destination as the supervisor parsed it when it registered it (nullptr: the console).
    const DestinationSpec* destination = nullptr;
    pid_t supervisor_pid = 0;
};

// Whether a destination's queue can move to others (failover, deldest): hash-route, and --rules (for the
// members of any_of, failover and dynamic clusters). Broadcast's destinations each have their own copy.
inline bool queues_move(const Heritage& heritage) { return heritage.config->hash_route() || heritage.rules != nullptr; }

int run_listener(const Heritage& heritage);
// The output process of a destination, whatever its kind (worker/output_loop.cpp).
int run_output(const Heritage& heritage);

// The aggregator process (worker/aggregator_main.cpp): runs the aggregate rules of --rules.
int run_aggregator(const Heritage& heritage);

// The rings of a destination queue: one per listener worker, the aggregator's (with aggregate rules), and the
// redistribution ring (always the last). The aggregator writes ring `workers` of every queue it writes, its own
// input queue included (whose rings are the listeners' and that one).
inline uint32_t destination_rings(uint32_t workers, bool aggregating) { return workers + 1 + (aggregating ? 1 : 0); }
inline uint32_t aggregator_ring(uint32_t workers) { return workers; }
// The aggregator's input queue and its state file under --state-dir.
inline std::string aggregator_queue_path(const std::string& state_dir) { return state_dir + "/aggregator.queue"; }
inline std::string aggregator_state_path(const std::string& state_dir) { return state_dir + "/aggregator.state"; }

// The queue file of a destination, named after it so a restart finds it again.
std::string queue_path(const std::string& state_dir, const std::string& destination);

// What every output process does first: maps its destination's queue file and takes the queue's
// lock (one consumer per queue, even while a previous polymur's output is still draining it).
// On failure it has logged why and returns nullptr with `exit_code` set.
std::unique_ptr<shm::QueueFile> attach_output_queue(const Heritage& heritage, const std::string& destination,
                                                    UniqueFd& lock, int& exit_code);

// Takes an exclusive flock on `path`, waiting (and saying so once) while another process holds
// it. `who` names the waiter in the log. Returns the locked fd, or an invalid one on error.
UniqueFd lock_file(const std::string& path, const std::string& who);

}  // namespace polymur
