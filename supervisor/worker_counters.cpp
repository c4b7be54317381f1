#include "supervisor/worker_counters.hpp"

#include <algorithm>

namespace polymur {

void add_worker_counters(const shm::ControlSegment& control, uint32_t workers, RelayStatus& s) {
    for (uint32_t i = 0; i < std::min(workers, shm::kMaxWorkers); ++i) {
        const shm::WorkerSlot& w = control.workers[i];
        s.received += w.received.load(std::memory_order_relaxed);
        s.invalid += w.invalid.load(std::memory_order_relaxed);
        s.too_long += w.too_long.load(std::memory_order_relaxed);
        s.unroutable += w.unroutable.load(std::memory_order_relaxed);
        s.connections += w.connections.load(std::memory_order_relaxed);
        s.connections_total += w.connections_total.load(std::memory_order_relaxed);
        s.pickle_invalid += w.pickle_invalid.load(std::memory_order_relaxed);
        s.udp_datagrams += w.udp_datagrams.load(std::memory_order_relaxed);
        // The workers share one socket and each saw its cumulative count at some moment: the largest is the latest.
        s.udp_dropped = std::max<uint64_t>(s.udp_dropped, w.udp_dropped_seen.load(std::memory_order_relaxed));
    }
}

}  // namespace polymur
