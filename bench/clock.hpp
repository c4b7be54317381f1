// The monotonic clock in nanoseconds, as the bench tools (load generator and sinks) time their runs.
#pragma once

#include <cstdint>
#include <ctime>

namespace polymur::bench {

inline int64_t mono_ns() {
    struct timespec ts = {};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace polymur::bench
