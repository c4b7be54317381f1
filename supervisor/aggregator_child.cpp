// The supervisor's side of aggregation (--rules with aggregate rules): the aggregator's input queue, created
// before any child is forked, its place in the process table, and its counters in `stats`. The process itself
// is worker/aggregator_main.cpp; docs/AGGREGATION.md describes the whole.
#include "common/log.hpp"
#include "supervisor/supervisor.hpp"

namespace polymur {

bool Supervisor::setup_aggregator() {
    if (!aggregating()) return true;
    const std::string path = aggregator_queue_path(config_.state_dir);
    std::string error;
    shm::QueueSpaceReport space;
    // One ring per listener and the aggregator's own (results that feed aggregates again).
    aggregator_queue_ = shm::QueueFile::open_or_create(
        path, "aggregator", shm::geometry_for(config_.workers + 1, config_.queue_bytes), UINT64_MAX, space, error);
    if (!aggregator_queue_) {
        LOG_ERROR("aggregator: queue %s: %s", path.c_str(), error.c_str());
        return false;
    }
    if (!config_.sync_interval_s) aggregator_queue_->forget_sync();
    if (!space.problem.empty()) LOG_ERROR("aggregator: queue %s %s", path.c_str(), space.problem.c_str());
    LOG_NOTICE("aggregator: %zu aggregate rules; queue %s holds %llu points", rules_table_->aggregate_count(),
               path.c_str(), static_cast<unsigned long long>(aggregator_queue_->queued_lines()));
    aggregator_ = Child {Role::aggregator, 0, ChildState::pending};
    return true;
}

void Supervisor::aggregator_status(RelayStatus& s) const {
    if (!aggregator_queue_) return;
    const shm::AggregatorSlot& a = control_->aggregator;
    s.aggregating = true;
    s.aggregator.points = a.points.load(std::memory_order_relaxed);
    s.aggregator.late = a.late.load(std::memory_order_relaxed);
    s.aggregator.future = a.future.load(std::memory_order_relaxed);
    s.aggregator.buckets_emitted = a.buckets_emitted.load(std::memory_order_relaxed);
    s.aggregator.results_dropped = a.results_dropped.load(std::memory_order_relaxed);
    s.aggregator.series = a.series.load(std::memory_order_relaxed);
    s.aggregator.replayed = a.replayed.load(std::memory_order_relaxed);
    s.aggregator.invalid = a.invalid.load(std::memory_order_relaxed);
    s.aggregator.discarded = a.discarded.load(std::memory_order_relaxed);
    s.aggregator.queued = aggregator_queue_->queued_lines();
    s.aggregator.dropped = aggregator_queue_->dropped_lines();
    s.aggregator.deaths = aggregator_.deaths;
    s.aggregator.restarts = aggregator_.restarts;
}

}  // namespace polymur
