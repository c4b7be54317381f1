// What the aggregator process keeps on disk besides its queue (docs/AGGREGATION.md, "Durability"): the state
// file <state-dir>/aggregator.state, and the records listeners queue for it. Both are read back after a restart,
// so both are parsed as outside input (fuzz/fuzz_aggregator_state.cpp): any bytes give an answer, never a crash.
//
// State file, version 2 (version 1 had no `rules` section; it is still read, with no fingerprints):
//     polymur-aggregator-state 2
//     rules N                       then N lines: the fingerprint of each aggregate rule of the run that wrote it
//     emitted_through_ms T          every bucket due by T (ms) was emitted and recorded
//     pending K                     then K times: results recorded before they were published
//     TARGET_SIZE TARGET START LINES SIZE\n BYTES
//
// Queued record (one line): RULE RECEIVED NAME VALUE TIMESTAMP, RULE the rule's fingerprint in 16 lower-case hex
// digits (a polymur before fingerprints wrote the rule's index there instead).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace polymur::aggregate {

inline constexpr uint32_t kStateVersion = 2;

// Results of one tick for one queue, recorded before they are published.
struct RecordedResults {
    std::string target;  // destination text, or "" for the aggregator's own queue (results that feed aggregates)
    uint64_t start = 0;  // the aggregator ring's write position before them
    uint64_t lines = 0;
    std::string bytes;
    int index = -1;  // the run's own: its LiveRoutes target (-1: the own queue); not recorded
};

struct SavedState {
    uint32_t version = kStateVersion;  // as read (1 or 2; the aggregator sets 0 for no file); written as kStateVersion
    int64_t emitted_through_ms = INT64_MIN;
    std::vector<uint64_t> fingerprints;  // the aggregate rules of the run that wrote it (none in version 1)
    std::vector<RecordedResults> pending;
};

std::string format_state(const SavedState& state);
// False with `error` when `text` is not a state file of either version, or is cut short.
bool parse_state(std::string_view text, SavedState& state, std::string& error);

// The RULE field of a queued record and its separator: 16 hex digits and a space.
inline constexpr size_t kRuleFieldSize = 17;
std::string rule_field(uint64_t fingerprint);

struct QueuedPoint {
    bool by_index = false;  // written by a polymur before fingerprints: `index` instead of `fingerprint`
    uint64_t fingerprint = 0;
    uint64_t index = 0;
    int64_t received = 0, timestamp = 0;
    std::string_view name;
    double value = 0;
};

// One record without its '\n'. False when it does not parse (a damaged queue).
bool parse_queued_point(std::string_view line, QueuedPoint& point);

}  // namespace polymur::aggregate
