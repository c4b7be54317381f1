// The destination slots of a hash-route table per carbon_ch position, so that a line whose position was placed
// before skips the ring walk.
//
// With --distribution hash-route (or a rules file of one `match *` to one carbon_ch cluster) the listener asks
// RoutingTable::one_cluster_slots for every line. When that cluster is carbon_ch and not dynamic, the answer
// depends on nothing but the name's ring position, the first two bytes of its MD5: 65536 positions, each with the
// same answer for every name until the table changes, and few distinct answers among them (one per destination
// with one replica). Each position keeps a byte naming its answer in a short list, filled as positions are first
// asked for: 64 KiB that stay in the CPU's caches. The listener calls reset() on every routing-table refresh (a
// ring rebuilt over other destinations, putdest or deldest to the cluster), so no answer outlives its table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "route/hash_ring.hpp"

namespace polymur::route {

class RoutingTable;

class PositionSlots {
public:
    static constexpr size_t kMaxSlots = 2;      // replication 1 or 2
    static constexpr size_t kMaxAnswers = 255;  // distinct answers kept; positions with others are asked each time

    PositionSlots();  // 64 KiB, taken at once
    // Whether `table` answers by position alone, in at most kMaxSlots slots (and routes_by_one_cluster()).
    static bool applies_to(const RoutingTable& table);
    // Forgets every answer: call it whenever the table changes or another one is used.
    void reset();
    // As table.one_cluster_slots(name, up, out) (`out` has room for RouteResult::kMaxSends), for a table that
    // applies_to() and has not changed since the last reset().
    size_t slots(const RoutingTable& table, std::string_view name, const bool* up, uint16_t* out) {
        // The position comes from the batch hashed ahead (carbon_ch_ahead.hpp) in the listener: no second MD5.
        return slots_at(table, name, carbon_ch_position(name), up, out);
    }
    // The same for a name whose carbon_ch position is known (carbon_ch_position(name), or carbon_ch_positions).
    size_t slots_at(const RoutingTable& table, std::string_view name, uint32_t position, const bool* up,
                    uint16_t* out) {
        position &= 0xffff;  // a name's position is two MD5 bytes
        if (const uint8_t known = answer_of_[position]) {
            const Answer& answer = answers_[known - 1];
            out[0] = answer.slot[0], out[1] = answer.slot[1];  // both: `out` has room, only `count` are read
            return answer.count;
        }
        return ask(table, name, position, up, out);
    }

private:
    size_t ask(const RoutingTable& table, std::string_view name, uint32_t position, const bool* up, uint16_t* out);

    struct Answer {
        uint16_t count;
        uint16_t slot[kMaxSlots];
    };
    std::unique_ptr<uint8_t[]> answer_of_;  // per position: 0 not known, else 1 + its index in answers_
    Answer answers_[kMaxAnswers] = {};
    size_t answer_count_ = 0;
};

}  // namespace polymur::route
