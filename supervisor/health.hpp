// Readiness of the relay for /health and polymur_ready: the supervisor is running and every child
// process it needs is alive and has reported (its heartbeat) recently.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "admin/relay_status.hpp"

namespace polymur {

struct ChildView {
    std::string name;            // "listener 0", "output 10.0.0.1:2003"
    pid_t pid = 0;               // 0: not running
    bool expected = false;       // it should be running (a removed destination's output is not)
    int64_t started_ms = 0;      // monotonic, when it was forked
    int64_t heartbeat_ms = 0;    // monotonic, its last heartbeat (may predate started_ms: not reported yet)
    int64_t stale_after_ms = 0;  // a heartbeat older than this means it is stuck
};

// `phase` is the supervisor's state name; only "running" can be ready.
Health evaluate_health(const std::string& phase, const std::vector<ChildView>& children, int64_t now_ms);

// How long a child may go without a heartbeat before /health reports it: 5 s, or the stall timeout
// when shorter; an output blocks up to --connect-timeout-ms in a connect, so it gets that plus 2 s.
int64_t health_stale_after_ms(bool output, uint32_t stall_timeout_s, uint32_t connect_timeout_ms);

}  // namespace polymur
