#include "worker/live_routes.hpp"

#include <algorithm>
#include <cstring>

#include "common/log.hpp"
#include "route/cluster_membership.hpp"

namespace polymur {

LiveRoutes::LiveRoutes(const Heritage& heritage, Writer writer, uint32_t own_slot)
        : heritage_(heritage), writer_(writer), own_slot_(own_slot) {
    hash_type_ = heritage.config->hash_type;
    hash_compat_ = heritage.config->hash_compat;
}

bool LiveRoutes::stale() const {
    return heritage_.control->header.generation.load(std::memory_order_acquire) != generation_;
}

void LiveRoutes::publish_all() {
    for (Target& t : targets_) t.producer->publish();
}

void LiveRoutes::refresh() {
    publish_all();  // lines already appended belong to the table they were routed by
    const Config& config = *heritage_.config;
    const char* who = writer_ == Writer::listener ? "listener"
        : writer_ == Writer::failover             ? "failover"
                                                  : "aggregator";
    uint64_t generation = heritage_.control->header.generation.load(std::memory_order_acquire);
    std::vector<Target> next;
    std::vector<bool> in_ring;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const shm::DestinationSlot& d = heritage_.control->destinations[slot];
        if (slot == own_slot_ ||
            d.state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::SlotState::active))
            continue;
        const auto type = static_cast<shm::DestinationType>(d.type);
        if (writer_ == Writer::failover && type != shm::DestinationType::tcp) continue;
        auto same = std::find_if(targets_.begin(), targets_.end(),
                                 [&](const Target& t) { return t.slot == slot && t.incarnation == d.incarnation; });
        if (same != targets_.end()) {
            next.push_back(std::move(*same));
            continue;
        }
        Target target {slot,    d.incarnation, type, std::string(d.text, strnlen(d.text, sizeof d.text)),
                       nullptr, nullptr};
        std::string error;
        target.queue = shm::QueueFile::open(queue_path(config.state_dir, target.text), error);
        if (!target.queue) {
            LOG_ERROR("%s: destination %s: %s; not routing to it", who, target.text.c_str(), error.c_str());
            continue;
        }
        uint32_t ring = writer_ == Writer::listener ? heritage_.index : target.queue->ring_count() - 1;
        if (writer_ == Writer::aggregator) {
            ring = aggregator_ring(config.workers);
            if (ring + 1 >= target.queue->ring_count()) {  // the last ring is the redistribution ring
                LOG_ERROR("%s: destination %s: its queue has no ring for the aggregator; not routing to it", who,
                          target.text.c_str());
                continue;
            }
        }
        target.producer = std::make_unique<shm::RingProducer>(*target.queue, ring, config.queue_cap);
        next.push_back(std::move(target));
    }
    // carbon adds ring nodes in configuration order, and collisions depend on it: registration
    // order (the incarnation) reproduces that order.
    std::sort(next.begin(), next.end(), [](const Target& a, const Target& b) { return a.incarnation < b.incarnation; });
    targets_ = std::move(next);

    auto is_in_ring = [&](const Target& t) {
        return t.type == shm::DestinationType::tcp &&
            heritage_.control->destinations[t.slot].in_ring.load(std::memory_order_acquire) != 0;
    };
    mirrors_.clear();
    target_of_.clear();
    own_table_slot_ = -1;
    if (heritage_.rules) {
        // The rules file's table with the clusters' runtime members (putdest ... to CLUSTER), which the
        // supervisor writes before it changes the destination table. The registered destinations are its
        // slots; a registered line destination no cluster lists (one being added, or draining after its last
        // deldest ... from) gets nothing; the console and HTTPS gateways are mirrors.
        std::vector<std::string> notes;
        std::string error;
        if (!route::follow_runtime_clusters(*heritage_.rules, config.state_dir, membership_text_, notes, error))
            LOG_ERROR("%s: %s; routing by the cluster members as they were", who, error.c_str());
        table_ = heritage_.rules;
        target_of_.assign(table_->slot_count(), -1);
        up_.reset(new bool[std::max<size_t>(table_->slot_count(), 1)]());
        for (size_t i = 0; i < targets_.size(); ++i) {
            long slot = targets_[i].type == shm::DestinationType::tcp ? table_->find_slot(targets_[i].text) : -1;
            if (slot < 0) {
                if (writer_ != Writer::failover && targets_[i].type != shm::DestinationType::tcp)
                    mirrors_.push_back(static_cast<uint16_t>(i));
                continue;
            }
            target_of_[size_t(slot)] = static_cast<int>(i);
            up_[size_t(slot)] = is_in_ring(targets_[i]);
        }
        if (own_slot_ != shm::kNoSlot) {
            const shm::DestinationSlot& own = heritage_.control->destinations[own_slot_];
            own_table_slot_ = table_->find_slot(std::string_view(own.text, strnlen(own.text, sizeof own.text)));
        }
    } else {
        // The implicit cluster: broadcast over every destination but the console, or the hash ring over
        // the destinations in the ring (HTTPS gateways and the console get every line).
        const bool broadcast = !config.hash_route();
        std::vector<route::Destination> members;
        for (size_t i = 0; i < targets_.size(); ++i) {
            const Target& t = targets_[i];
            const bool member = broadcast ? t.type != shm::DestinationType::console : is_in_ring(t);
            if (!member) {
                if (writer_ != Writer::failover && (broadcast || t.type != shm::DestinationType::tcp))
                    mirrors_.push_back(static_cast<uint16_t>(i));
                continue;
            }
            route::Destination destination;
            std::string error;
            if (t.type == shm::DestinationType::tcp && !route::parse_destination(t.text, destination, error)) {
                LOG_ERROR("%s: %s; not routing to it", who, error.c_str());
                continue;
            }
            destination.text = t.text;
            members.push_back(std::move(destination));
            target_of_.push_back(static_cast<int>(i));
        }
        std::string error;
        implicit_ = route::RoutingTable::build_implicit(broadcast, hash_type_, members, config.replication_factor,
                                                        config.diverse_replicas, error, hash_compat_);
        if (!implicit_) {
            LOG_ERROR("%s: cannot build the hash ring: %s", who, error.c_str());
            target_of_.clear();
        }
        table_ = implicit_ && implicit_->slot_count() ? implicit_.get() : nullptr;
        up_.reset(new bool[std::max<size_t>(target_of_.size(), 1)]);
        std::fill(up_.get(), up_.get() + std::max<size_t>(target_of_.size(), 1), true);
    }
    generation_ = generation;
}

}  // namespace polymur
