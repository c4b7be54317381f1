// hash-route failover as the supervisor decides it: which destinations are ring members, and which
// output holds the right to move a queue to the others. Part of the Supervisor class (supervisor.hpp).
#include "supervisor/supervisor.hpp"

#include "common/log.hpp"

namespace polymur {

// hash-route failover: a destination that failed --failover-after connects in a row leaves the
// ring (with --failover=reroute) and its queue moves to the others; it rejoins once connected.
// One output at a time holds the right to write the other queues' redistribution rings.
void Supervisor::update_ring_membership() {
    bool changed = false;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || !d.ring_member() || d.removing) continue;  // mirrors are not ring nodes
        shm::DestinationSlot& s = control_->destinations[slot];
        bool in_ring = s.in_ring.load(std::memory_order_relaxed) != 0;
        uint64_t failures = s.consecutive_failures.load(std::memory_order_relaxed);
        auto link = static_cast<shm::LinkState>(s.link_state.load(std::memory_order_relaxed));
        if (in_ring && config_.failover == Failover::reroute && failures >= config_.failover_after) {
            s.in_ring.store(0, std::memory_order_release);
            changed = true;
            if (!rules_table_)
                LOG_WARN(
                    "destination %s: left the ring after %llu failed connects; its %llu queued lines move to the other destinations",
                    d.text.c_str(), static_cast<unsigned long long>(failures),
                    static_cast<unsigned long long>(d.queue->queued_lines()));
            else if (queue_moves(d))
                LOG_WARN(
                    "destination %s: down after %llu failed connects; its %llu queued lines move to the other members of its "
                    "any_of, failover or dynamic clusters",
                    d.text.c_str(), static_cast<unsigned long long>(failures),
                    static_cast<unsigned long long>(d.queue->queued_lines()));
            else
                LOG_WARN(
                    "destination %s: down after %llu failed connects; its %llu queued lines wait for it (its clusters are "
                    "forward or hash clusters without dynamic)",
                    d.text.c_str(), static_cast<unsigned long long>(failures),
                    static_cast<unsigned long long>(d.queue->queued_lines()));
        } else if (!in_ring && link == shm::LinkState::connected) {
            s.in_ring.store(1, std::memory_order_release);
            changed = true;
            LOG_NOTICE("destination %s: connected again; %s", d.text.c_str(),
                       rules_table_ ? "up" : "rejoined the ring");
        }
    }
    if (changed) publish_generation();

    auto needs_reroute = [&](uint32_t slot) {
        const Destination& d = destinations_[slot];
        if (!d.in_use || !d.ring_member() || !d.queue || d.queue->queued_bytes() == 0 || !queue_moves(d)) return false;
        return d.removing || control_->destinations[slot].in_ring.load(std::memory_order_relaxed) == 0;
    };
    // The holder is the supervisor's own record; shared memory only tells the outputs.
    uint32_t& holder = reroute_holder_;
    if (holder != shm::kNoSlot && !needs_reroute(holder)) {
        const Destination& d = destinations_[holder];
        LOG_INFO("destination %s: %llu lines moved to other destinations so far", d.text.c_str(),
                 static_cast<unsigned long long>(control_->destinations[holder].rerouted_lines.load()));
        control_->header.reroute_slot.store(shm::kNoSlot, std::memory_order_release);
        holder = shm::kNoSlot;
    }
    if (holder == shm::kNoSlot) {
        for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
            if (needs_reroute(slot)) {
                control_->header.reroute_slot.store(slot, std::memory_order_release);
                holder = slot;
                break;
            }
        }
    }
}

}  // namespace polymur
