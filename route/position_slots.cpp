#include "route/position_slots.hpp"

#include <algorithm>

#include "route/hash_ring.hpp"
#include "route/routing_table.hpp"

namespace polymur::route {

PositionSlots::PositionSlots() : answers_(new Answer[65536]()) {}

bool PositionSlots::applies_to(const RoutingTable& table) {
    if (!table.routes_by_one_cluster()) return false;
    const size_t most = table.one_cluster_slots_by_position();
    return most > 0 && most <= kMaxSlots;
}

void PositionSlots::reset() {
    if (++epoch_ != 0) return;
    std::fill_n(answers_.get(), 65536, Answer {});  // every 65535 resets: no answer from before may look current
    epoch_ = 1;
}

size_t PositionSlots::slots(const RoutingTable& table, std::string_view name, const bool* up, uint16_t* out) {
    // The position comes from the batch hashed ahead (carbon_ch_ahead.hpp) in the listener: no second MD5.
    Answer& answer = answers_[carbon_ch_position(name) & 0xffff];  // a name's position is two MD5 bytes
    if (answer.epoch != epoch_) {
        const size_t count = table.one_cluster_slots(name, up, out);
        if (count > kMaxSlots) return count;  // not a table this applies to: nothing kept
        answer.count = static_cast<uint16_t>(count);
        std::copy_n(out, count, answer.slot);
        answer.epoch = epoch_;
        return count;
    }
    std::copy_n(answer.slot, answer.count, out);
    return answer.count;
}

}  // namespace polymur::route
