#include "worker/reroute.hpp"

#include <algorithm>
#include <cstring>

#include "common/log.hpp"

namespace polymur {

namespace {
constexpr uint64_t kBatchLines = 8192;
constexpr uint64_t kBatchBytes = 1 << 20;
}

Rerouter::Rerouter(const Heritage& heritage, uint32_t own_slot)
    : heritage_(heritage), own_slot_(own_slot) {
    hash_type_ = heritage.config->hash_type;
    hash_compat_ = heritage.config->hash_compat;
    // Room for the longest line any producer writes (whatever --max-line-length wrote the queue),
    // so the copy below never allocates; a longer line can only come from a damaged file, and
    // then the string grows instead of overflowing.
    wrapped_.reserve(shm::kMaxQueuedLine);
}

void Rerouter::refresh() {
    for (Target& t : targets_) t.producer->publish();
    uint64_t generation = heritage_.control->header.generation.load(std::memory_order_acquire);
    std::vector<Target> next;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const shm::DestinationSlot& d = heritage_.control->destinations[slot];
        if (slot == own_slot_ || d.state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::SlotState::active) ||
            d.type != static_cast<uint32_t>(shm::DestinationType::tcp) || d.in_ring.load(std::memory_order_acquire) == 0)
            continue;
        auto same = std::find_if(targets_.begin(), targets_.end(),
                                 [&](const Target& t) { return t.slot == slot && t.incarnation == d.incarnation; });
        if (same != targets_.end()) {
            next.push_back(std::move(*same));
            continue;
        }
        std::string text(d.text, strnlen(d.text, sizeof d.text));
        std::string error;
        Target target {slot, d.incarnation, {}, nullptr, nullptr};
        if (!route::parse_destination(text, target.destination, error)) continue;
        target.queue = shm::QueueFile::open(queue_path(heritage_.config->state_dir, text), error);
        if (!target.queue) {
            LOG_ERROR("failover: destination %s: %s", text.c_str(), error.c_str());
            continue;
        }
        target.producer = std::make_unique<shm::RingProducer>(*target.queue, target.queue->ring_count() - 1,
                                                              heritage_.config->queue_cap);
        next.push_back(std::move(target));
    }
    std::sort(next.begin(), next.end(), [](const Target& a, const Target& b) { return a.incarnation < b.incarnation; });
    targets_ = std::move(next);
    ring_.reset();
    if (!targets_.empty()) {
        std::vector<route::Destination> members;
        for (const Target& t : targets_) members.push_back(t.destination);
        std::string error;
        ring_ = route::HashRing::build(hash_type_, members, error, hash_compat_);
        if (!ring_) LOG_ERROR("failover: cannot build the hash ring: %s", error.c_str());
    }
    generation_ = generation;
}

uint64_t Rerouter::move_batch(shm::QueueReader& own) {
    if (heritage_.control->header.generation.load(std::memory_order_acquire) != generation_) refresh();
    if (!ring_) return 0;
    const Config& config = *heritage_.config;
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
            size_t n = ring_->lookup(name, config.replication_factor, config.diverse_replicas, chosen);
            bool room = true;
            for (size_t k = 0; k < n; ++k) room &= targets_[chosen[k]].producer->has_room(line.size());
            if (!room) {
                blocked = true;  // the targets are full: leave the rest queued here for now
                break;
            }
            for (size_t k = 0; k < n; ++k) {
                bool repeat = false;
                for (size_t j = 0; j < k; ++j) repeat |= chosen[j] == chosen[k];
                if (!repeat) targets_[chosen[k]].producer->append(&line, 1, line.size());
            }
            pos += line.size();
            ++lines;
        }
        if (!lines) continue;
        // Published to the targets before it leaves here: a crash in between duplicates, never loses.
        for (Target& t : targets_) t.producer->publish();
        own.commit(i, pos, lines);
        moved += lines;
    }
    own.rewind();
    if (moved) heritage_.control->destinations[own_slot_].rerouted_lines.fetch_add(moved, std::memory_order_relaxed);
    return moved;
}

}  // namespace polymur
