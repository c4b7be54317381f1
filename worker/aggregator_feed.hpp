// A listener's side of aggregation: every point an aggregate rule took (RouteResult::feeds) is appended to the
// aggregator's input queue (aggregator.queue under --state-dir), in the listener's own ring, as the record
//     RULE RECEIVED NAME VALUE TIMESTAMP\n
// RULE the aggregate rule's fingerprint (route::rules::aggregate_fingerprint, 16 hex digits: the aggregator
// applies the point only to the rule with that fingerprint, so a changed rules file cannot mix them up),
// RECEIVED the Unix second the listener read it (the aggregator judges the point's window by it, also when it
// reads the queue again after a restart), NAME as that rule saw it. No
// allocation per point; a full queue drops the point and counts it (the queue's dropped count).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/heritage.hpp"
#include "route/routing_table.hpp"
#include "shm/queue.hpp"

namespace polymur {

class AggregatorFeed {
public:
    // The feed of ring `ring` of the aggregator's queue; nullptr (logged) when the table has no aggregate rules
    // or the queue cannot be opened.
    static std::unique_ptr<AggregatorFeed> open(const Heritage& heritage, uint32_t ring, const char* who);

    // Appends one record per feed of `result` (the lookup of the line just routed).
    void add(const route::RouteResult& result, std::string_view value, std::string_view timestamp,
             std::string_view received);
    // What add() would append for `result`: `records` records of `bytes` bytes in all, added to both.
    void measure(const route::RouteResult& result, size_t value_size, size_t timestamp_size, size_t received_size,
                 uint64_t& bytes, uint64_t& records) const;
    // Whether `records` records of `bytes` bytes fit in the aggregator's queue now (its progress re-read), and
    // whether they would fit in it empty.
    bool has_room_for(uint64_t bytes, uint64_t records) {
        producer_->refresh();
        return producer_->has_room_for(bytes, records);
    }
    bool could_ever_fit(uint64_t bytes, uint64_t records) const { return producer_->could_ever_fit(bytes, records); }
    // Makes the appended records visible to the aggregator, and re-reads its progress for the next batch.
    void publish() {
        producer_->publish();
        producer_->refresh();
    }
    shm::QueueFile& queue() { return *queue_; }

private:
    size_t record_size(const route::RouteResult::Feed& feed, std::string_view name, size_t value_size,
                       size_t timestamp_size, size_t received_size) const {
        return rule_text_[feed.aggregate].size() + received_size + name.size() + value_size + timestamp_size + 4;
    }

    std::unique_ptr<shm::QueueFile> queue_;
    std::unique_ptr<shm::RingProducer> producer_;
    std::vector<std::string> rule_text_;  // "<fingerprint> " per aggregate rule, made once
};

}  // namespace polymur
