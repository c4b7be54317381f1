// The destination slots of a hash-route table per carbon_ch position, so that a line whose position was placed
// before skips the ring walk.
//
// With --distribution hash-route (or a rules file of one `match *` to one carbon_ch cluster) the listener asks
// RoutingTable::one_cluster_slots for every line. When that cluster is carbon_ch and not dynamic, the answer
// depends on nothing but the name's ring position, the first two bytes of its MD5: 65536 possible answers, each
// the same for every name at that position until the table changes. They are kept here as they are first asked
// for, tagged with an epoch that reset() moves on; the listener resets on every routing-table refresh (a ring
// rebuilt over other destinations, putdest or deldest to the cluster), so no answer outlives its table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

namespace polymur::route {

class RoutingTable;

class PositionSlots {
public:
    static constexpr size_t kMaxSlots = 2;  // replication 1 or 2

    PositionSlots();  // 65536 answers of 8 bytes (512 KiB), taken at once
    // Whether `table` answers by position alone, in at most kMaxSlots slots (and routes_by_one_cluster()).
    static bool applies_to(const RoutingTable& table);
    // Forgets every answer: call it whenever the table changes or another one is used.
    void reset();
    // As table.one_cluster_slots(name, up, out) (`out` has room for RouteResult::kMaxSends), for a table that
    // applies_to() and has not changed since the last reset().
    size_t slots(const RoutingTable& table, std::string_view name, const bool* up, uint16_t* out);

private:
    struct Answer {
        uint16_t epoch;  // current only if epoch_
        uint16_t count;
        uint16_t slot[kMaxSlots];
    };
    static_assert(sizeof(Answer) == 8);
    std::unique_ptr<Answer[]> answers_;
    uint16_t epoch_ = 1;  // answers start at 0: not current
};

}  // namespace polymur::route
