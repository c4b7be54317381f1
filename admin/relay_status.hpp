// What the admin protocol and /metrics report, as plain structs the supervisor fills (one consistent
// reading of the relay's counters and destinations, from shared memory and its own tables), and the
// renderers of the replies: `stats` (JSON), `getdest` (Polymur's JSON) and Prometheus' text format.
// Nothing here reads shared memory or the supervisor, so every reply is unit-tested byte for byte.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace polymur {

struct DestinationStatus {
    std::string name;   // as the operator wrote it
    std::string state;  // starting, connecting, connected, down, stopped, removing
    uint64_t queued = 0, queued_bytes = 0, sent = 0, sent_bytes = 0, dropped = 0, reconnects = 0, rerouted = 0;
    uint64_t unsendable = 0;      // queued lines its wire format cannot carry (pickle://), left out
    uint64_t capacity_bytes = 0;  // the queue's real size: less than --queue-bytes when the disk was short
    bool space_reserved = true;   // false: its file could not be allocated, new lines are dropped
    bool in_ring = false;
    bool console = false;
    uint64_t deaths = 0, restarts = 0;  // of its output process: exits not asked for, forks after the first
};

// One listener worker process: exits not asked for (crash, kill -9, stall kill) and forks after the first.
struct ListenerStatus {
    uint64_t deaths = 0, restarts = 0;
};

// The aggregator process (--rules with aggregate rules).
struct AggregatorStatus {
    uint64_t points = 0, late = 0, future = 0, buckets_emitted = 0, results_dropped = 0, series = 0, replayed = 0;
    uint64_t invalid = 0, queued = 0, dropped = 0, deaths = 0, restarts = 0, discarded = 0;
};

struct RelayStatus {
    uint64_t received = 0, invalid = 0, too_long = 0, unroutable = 0, blackholed = 0, connections = 0,
             connections_total = 0;
    uint64_t pickle_invalid = 0;                                // pickle frames refused
    uint64_t udp_datagrams = 0, udp_dropped = 0;                // read from the UDP socket; dropped by the kernel
    uint64_t tls_handshakes = 0, tls_refused = 0, tls_cut = 0;  // TLS listener: completed, failed, cut
    uint64_t compressed_streams = 0, compressed_invalid = 0;    // gzip/LZ4 connections; refused ones
    uint32_t workers = 0;
    std::string distribution;
    int64_t start_unix_seconds = 0;
    std::vector<DestinationStatus> destinations;
    std::vector<ListenerStatus> listeners;  // by worker index
    bool aggregating = false;
    AggregatorStatus aggregator;
};

// One destination as `getdest` lists it: every registered one (configured or added by putdest; not the
// console and not one being removed), with the time it was registered, and whether it takes metrics now.
struct RegisteredDestination {
    std::string name;  // as the operator wrote it
    int64_t registered_unix_ns = 0;
    bool active = false;  // connected (and, when a failed destination's queue moves, in the ring)
};

// Whether the relay can take traffic now: running, and every child it needs alive and reporting.
struct Health {
    bool ready = false;
    std::string reason;  // "ok", or what is wrong, for the /health body and logs
};

// The admin protocol's `stats` reply: one line of JSON.
std::string format_stats_json(const RelayStatus& status);

// The admin protocol's `getdest` reply, as Polymur printed it: {"active": [names], "registered":
// {name: RFC 3339 time}}, one entry a line, in the order given.
std::string format_getdest(const std::vector<RegisteredDestination>& destinations);

// The Prometheus text exposition format (version 0.0.4): HELP and TYPE lines, counters named
// *_total, per-destination series labelled destination="...".
std::string format_prometheus(const RelayStatus& status, const Health& health);

// A label value with \, " and newline escaped as the exposition format wants.
std::string prometheus_label_value(const std::string& text);

}  // namespace polymur
