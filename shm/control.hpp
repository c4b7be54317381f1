// The control segment: one anonymous shared mapping created by the supervisor before it forks.
// The supervisor is the only writer of the destination table; each child writes only its own
// counters. Everything here is fixed-width and pointer-free.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace polymur::shm {

inline constexpr uint64_t kControlMagic = 0x314c52544e434d50ULL;  // "PMCNTRL1"
inline constexpr uint32_t kControlLayoutVersion = 3;
// Destination slots of the control segment, one output process each (configured, added with putdest,
// the console); --max-destinations stays below it. Not route::kMaxRouteDestinations (a ring's limit).
inline constexpr uint32_t kDestinationSlots = 128;
inline constexpr uint32_t kMaxWorkers = 64;
inline constexpr size_t kDestinationTextMax = 256;

enum class SlotState : uint32_t { free = 0, active = 1, removing = 2 };
enum class DestinationType : uint32_t { tcp = 0, console = 1, https = 2 };
enum class LinkState : uint32_t { starting = 0, connecting = 1, connected = 2, down = 3, stopped = 4 };

const char* link_state_name(LinkState state);

using Counter = std::atomic<uint64_t>;
static_assert(Counter::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

struct DestinationSlot {
    // Written by the supervisor while the slot is free, then published by `state`.
    std::atomic<uint32_t> state;
    uint32_t type;
    uint64_t incarnation;  // new for every registration, so a reused slot is never mistaken
    int64_t registered_unix_ns;
    char text[kDestinationTextMax];  // as the operator wrote it
    // Written by the destination's output process.
    alignas(64) Counter sent_lines;
    Counter sent_bytes;
    Counter reconnects;
    std::atomic<uint32_t> link_state;
    uint32_t output_pid;
    Counter heartbeat_ms;          // monotonic clock, refreshed by every turn of the output loop
    Counter progress_ms;           // last time the destination accepted bytes, or had nothing to accept
    Counter consecutive_failures;  // failed connects since the last success
    Counter rerouted_lines;        // lines moved from this queue to other destinations (failover)
    Counter unsendable_lines;      // queued lines the destination's wire format cannot carry (pickle), left out
    // Written by the supervisor: whether hash-route places new metrics here (failover takes a
    // destination out and puts it back).
    alignas(64) std::atomic<uint32_t> in_ring;
};

struct WorkerSlot {
    alignas(64) Counter received;
    Counter invalid;
    Counter too_long;
    Counter unroutable;         // no destination took the line (hash-route with an empty ring, no rule matched)
    Counter connections;        // open now
    Counter connections_total;  // accepted since start
    Counter seen_generation;    // the destination table generation this worker routes by
    Counter heartbeat_ms;
    Counter pickle_invalid;      // pickle frames refused (bad or forbidden opcode, truncated, too long)
    Counter udp_datagrams;       // datagrams read from the UDP socket
    Counter udp_dropped_seen;    // the UDP socket's kernel drop count as this worker last saw it (cumulative)
    Counter tls_handshakes;      // TLS listener: handshakes completed
    Counter tls_refused;         // TLS listener: handshakes that failed (certificate refused, not TLS, ...)
    Counter tls_cut;             // TLS listener: handshakes cut at --handshake-timeout or over the cap in progress
    Counter compressed_streams;  // line connections that turned out to be gzip or LZ4 streams
    Counter compressed_invalid;  // of those, closed because their bytes did not decode (or were cut short)
    Counter blackholed;          // --rules: ended by a blackhole rule or a failed `validate ... else drop`
};

// The aggregator process (--rules with aggregate rules): written by it, read by the supervisor.
struct AggregatorSlot {
    alignas(64) Counter heartbeat_ms;  // monotonic clock, refreshed by every turn of its loop
    Counter points;                    // (point, compute) pairs taken into a bucket
    Counter late;                      // dropped: their bucket was emitted already (or older than the window)
    Counter future;                    // dropped: beyond the newest bucket of the series' window
    Counter buckets_emitted;           // results written to the destinations' queues
    Counter results_dropped;           // results a full destination queue refused
    Counter series;                    // series open now
    Counter replayed;                  // points read again after a restart (their buckets were open)
    Counter invalid;                   // queued records that did not parse (a damaged queue), skipped
    Counter discarded;                 // queued points of a rule no longer in the rules file (changed), skipped
};

struct ControlHeader {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t layout_size;
    uint32_t creator_pid;
    uint32_t worker_count;
    int64_t start_unix_ns;
    // Bumped (release) after every change to the destination table.
    alignas(64) std::atomic<uint64_t> generation;
    // The one destination slot whose output may write other queues' redistribution rings now
    // (kNoSlot: none). Granted by the supervisor, so each redistribution ring has one producer.
    std::atomic<uint32_t> reroute_slot;
    // Options a reload (SIGHUP) changes under running children (supervisor/reload_policy.cpp); the
    // supervisor writes them, children read them where they use them.
    std::atomic<uint32_t> idle_timeout_s;
    std::atomic<uint32_t> reconnect_interval_s;
    std::atomic<uint32_t> connect_timeout_ms;
    std::atomic<uint32_t> drain_timeout_s;
};

inline constexpr uint32_t kNoSlot = ~0u;

struct ControlSegment {
    ControlHeader header;
    DestinationSlot destinations[kDestinationSlots];
    WorkerSlot workers[kMaxWorkers];
    AggregatorSlot aggregator;
};

static_assert(std::is_standard_layout_v<ControlSegment>);
static_assert(sizeof(DestinationSlot) % 64 == 0);

// Placement-initialises a zeroed mapping of at least sizeof(ControlSegment) bytes.
ControlSegment* init_control(void* memory, uint32_t worker_count);
// Checks magic, version and size; a child calls this before it trusts the segment.
bool control_is_valid(const ControlSegment* control);

}  // namespace polymur::shm
