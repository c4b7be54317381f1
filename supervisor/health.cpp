#include "supervisor/health.hpp"

#include <algorithm>

namespace polymur {

int64_t health_stale_after_ms(bool output, uint32_t stall_timeout_s, uint32_t connect_timeout_ms) {
    int64_t limit = 5000;
    if (output) limit = std::max<int64_t>(limit, static_cast<int64_t>(connect_timeout_ms) + 2000);
    return std::min<int64_t>(limit, static_cast<int64_t>(stall_timeout_s) * 1000);
}

Health evaluate_health(const std::string& phase, const std::vector<ChildView>& children, int64_t now_ms) {
    if (phase != "running") return {false, phase};
    for (const ChildView& c : children) {
        if (!c.expected) continue;
        if (c.pid == 0) return {false, c.name + ": not running"};
        if (c.heartbeat_ms < c.started_ms) return {false, c.name + " (pid " + std::to_string(c.pid) + "): starting"};
        int64_t silent = now_ms - c.heartbeat_ms;
        if (silent > c.stale_after_ms)
            return {false,
                    c.name + " (pid " + std::to_string(c.pid) + "): no heartbeat for " + std::to_string(silent / 1000) +
                        "." + std::to_string(silent % 1000 / 100) + " s"};
    }
    return {true, "ok"};
}

}  // namespace polymur
