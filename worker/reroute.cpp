#include "worker/reroute.hpp"

#include <algorithm>
#include <cstring>

#include "common/log.hpp"

namespace polymur {

namespace {
constexpr uint64_t kBatchLines = 8192;
constexpr uint64_t kBatchBytes = 1 << 20;
}  // namespace

Rerouter::Rerouter(const Heritage& heritage, uint32_t own_slot)
        : heritage_(heritage), own_slot_(own_slot), routes_(heritage, LiveRoutes::Writer::failover, own_slot),
          result_(std::make_unique<route::RouteResult>()) {
    // Room for the longest line any producer writes (whatever --max-line-length wrote the queue),
    // so the copy below never allocates; a longer line can only come from a damaged file, and
    // then the string grows instead of overflowing.
    wrapped_.reserve(shm::kMaxQueuedLine);
}

bool Rerouter::has_targets() {
    if (routes_.stale()) routes_.refresh();
    const route::RoutingTable* table = routes_.table();
    if (!table) return false;
    if (!routes_.rules()) return true;
    return routes_.own_table_slot() >= 0 && table->slot_fails_over(size_t(routes_.own_table_slot()));
}

size_t Rerouter::place(std::string_view name, uint16_t* out, size_t cap) {
    const route::RoutingTable* table = routes_.table();
    size_t count = 0;
    if (routes_.rules()) {
        if (routes_.own_table_slot() < 0) return 0;
        uint16_t slots[route::kMaxReplication];
        size_t got =
            table->failover(name, size_t(routes_.own_table_slot()), routes_.up(), slots, route::kMaxReplication);
        for (size_t k = 0; k < got && count < cap; ++k)
            if (int target = routes_.target_of(slots[k]); target >= 0) out[count++] = uint16_t(target);
        return count;
    }
    // The implicit cluster, built over the destinations in the ring (this one is not).
    route::RouteResult& result = *result_;
    table->route(name, {}, routes_.up(), result);
    for (size_t k = 0; k < result.send_count && count < cap; ++k)
        if (int target = routes_.target_of(result.sends[k].slot); target >= 0) out[count++] = uint16_t(target);
    return count;
}

uint64_t Rerouter::move_batch(shm::QueueReader& own) {
    if (routes_.stale()) routes_.refresh();
    if (!routes_.table()) return 0;
    std::vector<LiveRoutes::Target>& targets = routes_.targets();
    uint64_t moved = 0;
    bool blocked = false;
    own.rewind();
    shm::ReadBatch batch;
    for (uint32_t i = 0; i < own.ring_count() && !blocked; ++i) {
        if (!own.read(i, kBatchBytes, batch)) continue;
        uint64_t pos = batch.start;
        uint64_t lines = 0;
        const std::string_view first = batch.spans[0], second = batch.spans[1];
        while (pos < batch.end && lines < kBatchLines) {
            // The line at pos, which may run from the end of the first span into the second.
            const uint64_t at = pos - batch.start;
            std::string_view rest = at < first.size() ? first.substr(at) : second.substr(at - first.size());
            const size_t nl = rest.find('\n');
            std::string_view line;
            if (nl != std::string_view::npos) {
                line = rest.substr(0, nl + 1);
            } else {
                // Only the first span ends without a newline (the batch ends on a whole line).
                wrapped_.assign(rest.data(), rest.size());
                wrapped_.append(second.data(), second.find('\n') + 1);
                line = wrapped_;
            }
            std::string_view name = line.substr(0, std::min(line.find(' '), line.size() - 1));
            uint16_t chosen[route::kMaxReplication];
            size_t n = place(name, chosen, route::kMaxReplication);
            bool room = n > 0;  // none: every other member is down too; the line waits here
            for (size_t k = 0; k < n; ++k) room &= targets[chosen[k]].producer->has_room(line.size());
            if (!room) {
                blocked = true;  // the targets are full: leave the rest queued here for now
                break;
            }
            for (size_t k = 0; k < n; ++k) targets[chosen[k]].producer->append(&line, 1, line.size());
            pos += line.size();
            ++lines;
        }
        if (!lines) continue;
        // Published to the targets before it leaves here: a crash in between duplicates, never loses.
        routes_.publish_all();
        own.commit(i, pos, lines);
        moved += lines;
    }
    own.rewind();
    if (moved) heritage_.control->destinations[own_slot_].rerouted_lines.fetch_add(moved, std::memory_order_relaxed);
    return moved;
}

}  // namespace polymur
