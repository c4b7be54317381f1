// Failover: moves the lines queued for a destination that is down (or was removed) to the destinations the
// routing table names for them now (hash-route: the ring without it; --rules: the other members of its any_of,
// failover and dynamic clusters), through each target queue's redistribution ring (the last ring; the
// supervisor lets one output at a time write them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/heritage.hpp"
#include "route/routing_table.hpp"
#include "shm/queue.hpp"
#include "shm/queue_reader.hpp"
#include "worker/live_routes.hpp"

namespace polymur {

class Rerouter {
public:
    Rerouter(const Heritage& heritage, uint32_t own_slot);

    // Moves up to a batch of lines out of the queue `own` reads, committing them there. Starts
    // from, and leaves `own` rewound to, its committed positions. Returns the lines moved; 0 with
    // lines still queued means there is nowhere (or no room) to put them now.
    uint64_t move_batch(shm::QueueReader& own);
    // Whether there is anywhere the lines could go (false: a removed destination's lines have no other home).
    bool has_targets();

private:
    // The targets (indices into routes_.targets()) of a queued line named `name`.
    size_t place(std::string_view name, uint16_t* out, size_t cap);

    const Heritage& heritage_;
    uint32_t own_slot_;
    LiveRoutes routes_;
    std::unique_ptr<route::RouteResult> result_;
    std::string wrapped_;  // a line that wraps around the ring end is copied here
};

}  // namespace polymur
