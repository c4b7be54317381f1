#include "worker/aggregator_feed.hpp"

#include "aggregate/state_file.hpp"
#include "common/log.hpp"

namespace polymur {

std::unique_ptr<AggregatorFeed> AggregatorFeed::open(const Heritage& heritage, uint32_t ring, const char* who) {
    if (!heritage.rules || heritage.rules->aggregate_count() == 0) return nullptr;
    std::string error;
    auto queue = shm::QueueFile::open(aggregator_queue_path(heritage.config->state_dir), error);
    if (!queue) {
        LOG_ERROR("%s: aggregator queue: %s; points for aggregate rules are dropped", who, error.c_str());
        return nullptr;
    }
    if (ring >= queue->ring_count()) {
        LOG_ERROR("%s: aggregator queue %s has %u rings, not %u; points for aggregate rules are dropped", who,
                  queue->path().c_str(), queue->ring_count(), ring + 1);
        return nullptr;
    }
    std::unique_ptr<AggregatorFeed> feed(new AggregatorFeed());
    feed->producer_ = std::make_unique<shm::RingProducer>(*queue, ring, heritage.config->queue_cap);
    feed->queue_ = std::move(queue);
    for (size_t a = 0; a < heritage.rules->aggregate_count(); ++a)
        feed->rule_text_.push_back(aggregate::rule_field(heritage.rules->aggregate_fingerprint(a)));
    return feed;
}

void AggregatorFeed::add(const route::RouteResult& result, std::string_view value, std::string_view timestamp,
                         std::string_view received) {
    for (size_t f = 0; f < result.feed_count; ++f) {
        const route::RouteResult::Feed& feed = result.feeds[f];
        const std::string_view name = result.name_of(feed);
        const std::string_view parts[9] = {
            rule_text_[feed.aggregate], received, " ", name, " ", value, " ", timestamp, "\n"};
        producer_->append(parts, 9, record_size(feed, name, value.size(), timestamp.size(), received.size()));
    }
}

void AggregatorFeed::measure(const route::RouteResult& result, size_t value_size, size_t timestamp_size,
                             size_t received_size, uint64_t& bytes, uint64_t& records) const {
    for (size_t f = 0; f < result.feed_count; ++f) {
        const route::RouteResult::Feed& feed = result.feeds[f];
        bytes += record_size(feed, result.name_of(feed), value_size, timestamp_size, received_size);
        ++records;
    }
}

}  // namespace polymur
