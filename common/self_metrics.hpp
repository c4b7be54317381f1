// polymur's own counters as Graphite metrics, named like carbon-c-relay's so existing dashboards
// work: <prefix>.metricsReceived, .metricsSent, ..., .destinations.<host_port>.sent. Cumulative,
// like carbon-c-relay's (use nonNegativeDerivative()); metricsQueued is a sample.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace polymur {

struct RelayCounters {
    uint64_t received = 0, sent = 0, dropped = 0, queued = 0, invalid = 0, unroutable = 0;
    uint64_t connections_total = 0, connections_open = 0;
    struct Destination {
        std::string name;
        uint64_t sent = 0, queued = 0, dropped = 0;
    };
    std::vector<Destination> destinations;
    // --rules with aggregate rules: the aggregator's points taken, buckets emitted, late points dropped.
    bool aggregating = false;
    uint64_t aggregator_points = 0, aggregator_buckets = 0, aggregator_late = 0;
};

// "carbon.relays.<short hostname>" (dots in the hostname become underscores).
std::string default_metrics_prefix();
// A metric path component: '.', ':', whitespace and '/' become '_'.
std::string metric_safe(std::string_view text);
// The plaintext lines for one report, each ending in '\n'.
std::string format_self_metrics(const std::string& prefix, const RelayCounters& counters, int64_t unix_seconds);

}  // namespace polymur
