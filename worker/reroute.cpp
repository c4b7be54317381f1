#include "worker/reroute.hpp"

#include <algorithm>
#include <cstring>

#include "common/log.hpp"

namespace polymur {

namespace {
constexpr uint64_t kBatchLines = 8192;
}

Rerouter::Rerouter(const Heritage& heritage, uint32_t own_slot)
    : heritage_(heritage), own_slot_(own_slot), line_(new char[heritage.config->max_line_length + 64]) {
    route::parse_hash_type(heritage.config->hash_type, hash_type_);
    route::parse_hash_compat(heritage.config->hash_compat, hash_compat_);
}

void Rerouter::refresh() {
    for (Target& t : targets_) t.producer->publish();
    uint64_t generation = heritage_.control->header.generation.load(std::memory_order_acquire);
    std::vector<Target> next;
    for (uint32_t slot = 0; slot < shm::kMaxDestinations; ++slot) {
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

uint64_t Rerouter::move_batch(shm::QueueFile& own) {
    if (heritage_.control->header.generation.load(std::memory_order_acquire) != generation_) refresh();
    if (!ring_) return 0;
    const Config& config = *heritage_.config;
    const uint64_t capacity = own.ring_capacity();
    uint64_t moved = 0;
    bool blocked = false;
    for (uint32_t i = 0; i < own.ring_count() && !blocked; ++i) {
        shm::RingControl& ring = own.ring(i);
        const char* data = own.ring_data(i);
        uint64_t pos = ring.read_pos.load(std::memory_order_relaxed);
        const uint64_t end = ring.write_pos.load(std::memory_order_acquire);
        uint64_t lines = 0;
        while (pos < end && lines < kBatchLines) {
            // The line from pos to the next '\n', which may wrap around the ring end.
            uint64_t offset = pos % capacity;
            uint64_t first_span = std::min(end - pos, capacity - offset);
            const char* nl = static_cast<const char*>(std::memchr(data + offset, '\n', first_span));
            std::string_view line;
            if (nl) {
                line = std::string_view(data + offset, static_cast<size_t>(nl - (data + offset) + 1));
            } else {
                const char* wrapped = static_cast<const char*>(std::memchr(data, '\n', end - pos - first_span));
                if (!wrapped) break;  // cannot happen: producers publish whole lines
                size_t second = static_cast<size_t>(wrapped - data + 1);
                std::memcpy(line_.get(), data + offset, first_span);
                std::memcpy(line_.get() + first_span, data, second);
                line = std::string_view(line_.get(), first_span + second);
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
        shm::commit_read(ring, pos, lines);
        moved += lines;
    }
    if (moved) heritage_.control->destinations[own_slot_].rerouted_lines.fetch_add(moved, std::memory_order_relaxed);
    return moved;
}

}  // namespace polymur
