// Failover for hash-route: moves the lines queued for a destination that left the ring (or was
// removed) to the destinations the ring names for them now, through each target queue's
// redistribution ring (the last ring; the supervisor lets one output at a time write them).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "route/hash_ring.hpp"
#include "shm/queue.hpp"
#include "shm/queue_reader.hpp"
#include "common/heritage.hpp"

namespace polymur {

class Rerouter {
public:
    Rerouter(const Heritage& heritage, uint32_t own_slot);

    // Moves up to a batch of lines out of the queue `own` reads, committing them there. Starts
    // from, and leaves `own` rewound to, its committed positions. Returns the lines moved; 0 with
    // lines still queued means there is nowhere (or no room) to put them now.
    uint64_t move_batch(shm::QueueReader& own);
    bool has_targets() const { return ring_ != nullptr; }

private:
    struct Target {
        uint32_t slot;
        uint64_t incarnation;
        route::Destination destination;
        std::unique_ptr<shm::QueueFile> queue;
        std::unique_ptr<shm::RingProducer> producer;
    };

    void refresh();

    const Heritage& heritage_;
    uint32_t own_slot_;
    route::HashType hash_type_ = route::HashType::carbon_ch;
    route::HashCompat hash_compat_ = route::HashCompat::graphite;
    uint64_t generation_ = ~uint64_t(0);
    std::vector<Target> targets_;
    std::unique_ptr<route::HashRing> ring_;
    std::string wrapped_;  // a line that wraps around the ring end is copied here
};

}  // namespace polymur
