// The listener workers' counters, summed: the one place that reads them from shared memory, for
// `stats`, /metrics, self-metrics and the rate lines in the log.
#pragma once

#include <cstdint>

#include "admin/relay_status.hpp"
#include "shm/control.hpp"

namespace polymur {

// Adds the counters of workers 0..workers-1 into `status` (received, invalid, too_long, unroutable,
// connections, connections_total, pickle_invalid, udp_datagrams) and sets udp_dropped to the latest
// drop count any of them saw (they share one socket, so the largest cumulative count is the newest).
void add_worker_counters(const shm::ControlSegment& control, uint32_t workers, RelayStatus& status);

}  // namespace polymur
