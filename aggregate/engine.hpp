// The aggregation engine: carbon-c-relay 3.7.3's `aggregate` buckets, as observed by running it (see
// docs/AGGREGATION.md for the rules and the experiments behind them). Pure: no I/O, no clock of its own; the
// caller passes the time. One series per (aggregate rule, compute, written name); each series keeps a ring of
// ceil(expire/interval) + 2 buckets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "route/routing_table.hpp"

namespace polymur::aggregate {

struct Limits {
    size_t max_series = 1000000;           // series beyond it are not created; their points are counted
    size_t max_values_per_bucket = 65536;  // median/percentile: a uniform sample of this many values per bucket
};

struct Counters {
    uint64_t points = 0;          // (point, compute) pairs taken into a bucket
    uint64_t late = 0;            // older than the series' oldest open bucket (its bucket was emitted)
    uint64_t future = 0;          // beyond the series' newest bucket
    uint64_t series_full = 0;     // a new series past Limits::max_series
    uint64_t name_too_long = 0;   // a written name that does not fit kMaxName
    uint64_t values_sampled = 0;  // values a median/percentile bucket kept out of its sample (bound reached)
    uint64_t buckets_emitted = 0;
    uint64_t replayed_emitted = 0;  // replayed after a restart into a bucket the previous run had emitted
};

// One result: `line` is "name value timestamp\n" (the value as carbon-c-relay prints it: %f, count as an integer).
struct Result {
    size_t aggregate;  // index of the rule (RoutingTable::aggregate)
    std::string_view name;
    std::string_view line;
    int64_t bucket_start;
};

class Engine {
public:
    static constexpr size_t kMaxName = 64 * 1024;  // all the names one point writes, together
    static constexpr size_t kMaxComputes = route::rules::kMaxAggregateComputes;

    Engine(const route::RoutingTable& table, Limits limits = {});
    ~Engine();
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // A point aggregate `aggregate` took (RouteResult::Feed), named `name` as the rule saw it, received at
    // `now_s` (Unix seconds). Adds it to each compute's series; creates a series on its first point.
    // Returns when (Unix ms) the last of the buckets it went into is due (tick() emits it then); 0 when it went
    // into none (late, future, or a bucket already emitted before a restart).
    int64_t add(size_t aggregate, std::string_view name, double value, int64_t timestamp, int64_t now_s);

    // After a restart: every bucket due at or before `ms` (Unix ms) was emitted by the previous run. Points
    // replayed into such a bucket are skipped silently (counted as `replayed_emitted`, not late), and a series
    // created now starts its window after them.
    void set_emitted_through(int64_t ms) { emitted_through_ms_ = ms; }

    // Emits every bucket whose time has come at `now_ms` (Unix milliseconds), oldest first within a series,
    // and moves those series' windows on. A bucket that received no point is skipped silently.
    void tick(int64_t now_ms, const std::function<void(const Result&)>& emit);

    // Emits every open bucket with a point, whatever the time (tests; never used by the relay).
    void flush(const std::function<void(const Result&)>& emit);

    const Counters& counters() const { return counters_; }
    size_t series_count() const;

private:
    struct Series;
    struct NameHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
    };
    const route::RoutingTable& table_;
    Limits limits_;
    Counters counters_;
    // Per (aggregate, compute): written name -> series. Lookups by string_view do not allocate.
    std::vector<std::vector<
        std::unique_ptr<std::unordered_map<std::string, std::unique_ptr<Series>, NameHash, std::equal_to<>>>>>
        series_;
    size_t series_total_ = 0;
    int64_t emitted_through_ms_ = INT64_MIN;
    char name_[kMaxName];
    char line_[kMaxName + 512];

    void emit_bucket(size_t aggregate, size_t compute, const std::string& name, Series& series, size_t slot,
                     const std::function<void(const Result&)>& emit);
};

// The value carbon-c-relay 3.7.3 reports for percentile `p` (1..99) of `sorted` (ascending, not empty):
// sorted[floor(p / 100.0 * n + 0.9) - 1], and 0 when that rank is 0 (observed: 1 value, p <= 5 gives 0).
double percentile_of(const double* sorted, size_t n, int p);

}  // namespace polymur::aggregate
