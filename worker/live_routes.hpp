// The destinations a worker writes to and the routing table it asks where a line goes, kept in step with the
// supervisor's destination table. The listener (new lines) and the failover path (queued lines) both route
// through it, so both follow one table: the rules file's (--rules), or the implicit one cluster and `match *`
// of --distribution/--destinations, rebuilt over the destinations registered and in the ring.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/heritage.hpp"
#include "route/routing_table.hpp"
#include "shm/queue.hpp"

namespace polymur {

class LiveRoutes {
public:
    struct Target {
        uint32_t slot;  // destination slot in the control segment
        uint64_t incarnation;
        shm::DestinationType type;
        std::string text;
        std::unique_ptr<shm::QueueFile> queue;
        std::unique_ptr<shm::RingProducer> producer;
    };

    enum class Writer { listener, failover, aggregator };
    // listener: writes ring `heritage.index` of every queue and the mirrors (console, HTTPS gateways).
    // failover: writes each queue's redistribution ring (the last), never `own_slot`'s, never a mirror.
    // aggregator: as a listener, into the aggregator's ring of every queue (aggregator_ring()).
    LiveRoutes(const Heritage& heritage, Writer writer, uint32_t own_slot = shm::kNoSlot);

    // Whether the supervisor changed the destination table since the last refresh.
    bool stale() const;
    // Publishes what was appended, then follows the supervisor's table. Never throws.
    void refresh();
    void publish_all();
    // The supervisor's table generation the last refresh followed.
    uint64_t generation() const { return generation_; }

    std::vector<Target>& targets() { return targets_; }
    // Targets that get every line as received (not in the table).
    const std::vector<uint16_t>& mirrors() const { return mirrors_; }
    // The table; nullptr when nothing can be routed (no destination in the implicit cluster).
    const route::RoutingTable* table() const { return table_; }
    // Per table slot: the destination is up (failover, any_of and dynamic clusters route around the others).
    const bool* up() const { return up_.get(); }
    // The target a table slot writes to, or -1 (the destination is not registered).
    int target_of(size_t table_slot) const { return table_slot < target_of_.size() ? target_of_[table_slot] : -1; }
    // The own destination's slot in the table (failover writer with --rules), or -1.
    long own_table_slot() const { return own_table_slot_; }
    bool rules() const { return heritage_.rules != nullptr; }

private:
    const Heritage& heritage_;
    Writer writer_;
    uint32_t own_slot_;
    uint64_t generation_ = ~uint64_t(0);
    std::vector<Target> targets_;
    std::vector<uint16_t> mirrors_;
    std::unique_ptr<route::RoutingTable> implicit_;
    const route::RoutingTable* table_ = nullptr;
    std::unique_ptr<bool[]> up_;
    std::vector<int> target_of_;
    long own_table_slot_ = -1;
    std::string membership_text_;  // the runtime-clusters file as last applied to the table
    route::HashType hash_type_ = route::HashType::carbon_ch;
    route::HashCompat hash_compat_ = route::HashCompat::graphite;
};

}  // namespace polymur
