#include "aggregate/engine.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace polymur::aggregate {

namespace rules = route::rules;
using rules::AggregateFunction;

namespace {

int64_t floor_to(int64_t t, int64_t step) {
    int64_t q = t / step;
    if (t % step < 0) --q;
    return q * step;
}

uint64_t mix(uint64_t x) {  // splitmix64's finaliser
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

}  // namespace

double percentile_of(const double* sorted, size_t n, int p) {
    // Observed on carbon-c-relay 3.7.3 (tests/aggregate/differential.py): about the nearest rank, except that
    // ranks below 0.1 give 0. rank = floor(p / 100.0 * n + 0.9), computed in this order in doubles, reproduces
    // every observation (18 values at p95: 0.95 * 18 = 17.099999..., rank 17, not 18).
    double rank = std::floor(double(p) / 100.0 * double(n) + 0.9);
    if (rank < 1) return 0;
    size_t index = std::min(size_t(rank), n) - 1;
    return sorted[index];
}

struct Engine::Series {
    struct Bucket {
        uint64_t count = 0;
        double sum = 0, min = 0, max = 0, squares = 0;  // variance = squares/n - mean^2, as carbon-c-relay's results
        std::vector<double> values;                     // median/percentile only; capacity kept
    };
    int64_t oldest = 0;   // start of the oldest open bucket
    int64_t fuzz_ms = 0;  // a bucket is due at start + expire + fuzz (carbon-c-relay spreads them over the interval)
    size_t head = 0;      // ring index of the oldest bucket
    uint64_t rng = 0;     // reservoir sampling past Limits::max_values_per_bucket
    std::vector<Bucket> buckets;
};

Engine::Engine(const route::RoutingTable& table, Limits limits) : table_(table), limits_(limits) {
    series_.resize(table.aggregate_count());
    for (size_t a = 0; a < table.aggregate_count(); ++a) {
        series_[a].resize(table.aggregate(a).computes.size());
        for (auto& map : series_[a])
            map =
                std::make_unique<std::unordered_map<std::string, std::unique_ptr<Series>, NameHash, std::equal_to<>>>();
    }
}

Engine::~Engine() = default;

size_t Engine::series_count() const { return series_total_; }

int64_t Engine::add(size_t aggregate, std::string_view name, double value, int64_t timestamp, int64_t now_s) {
    const rules::Aggregate& rule = table_.aggregate(aggregate);
    const int64_t interval = rule.interval;
    const size_t nbuckets = size_t((rule.expire + rule.interval - 1) / rule.interval) + 2;
    std::string_view names[kMaxComputes];
    const size_t computes = std::min(rule.computes.size(), kMaxComputes);
    if (!table_.aggregate_output_names(aggregate, name, name_, sizeof name_, names)) {
        counters_.name_too_long += computes;
        return 0;
    }
    int64_t due_ms = 0;
    const int64_t expire_ms = int64_t(rule.expire) * 1000;
    for (size_t c = 0; c < computes; ++c) {
        std::string_view written = names[c];
        auto& map = *series_[aggregate][c];
        auto found = map.find(written);
        Series* series;
        if (found == map.end()) {
            if (series_total_ >= limits_.max_series) {
                ++counters_.series_full;
                continue;
            }
            auto created = std::make_unique<Series>();
            created->oldest = floor_to(now_s - rule.expire, interval);
            uint64_t h = mix(std::hash<std::string_view>()(written) ^ (uint64_t(aggregate) << 32) ^ c);
            created->fuzz_ms = int64_t(h % uint64_t(interval * 1000));
            created->rng = h | 1;
            created->buckets.resize(nbuckets);
            // After a restart the window starts past the buckets the previous run emitted (all empty here).
            while (created->oldest * 1000 + expire_ms + created->fuzz_ms <= emitted_through_ms_)
                created->oldest += interval;
            series = created.get();
            map.emplace(std::string(written), std::move(created));
            ++series_total_;
        } else {
            series = found->second.get();
        }
        const int64_t start = floor_to(timestamp, interval);
        if (start * 1000 + expire_ms + series->fuzz_ms <= emitted_through_ms_) {
            ++counters_.replayed_emitted;  // before a restart this bucket was emitted (or the point was late)
            continue;
        }
        if (timestamp < series->oldest) {
            ++counters_.late;
            continue;
        }
        int64_t offset = (timestamp - series->oldest) / interval;
        if (offset >= int64_t(nbuckets)) {
            ++counters_.future;
            continue;
        }
        Series::Bucket& b = series->buckets[(series->head + size_t(offset)) % nbuckets];
        ++b.count;
        if (b.count == 1) {
            b.sum = b.min = b.max = value;
            b.squares = value * value;
        } else {
            b.sum += value;
            b.min = std::min(b.min, value);
            b.max = std::max(b.max, value);
            b.squares += value * value;
        }
        AggregateFunction f = rule.computes[c].function;
        if (f == AggregateFunction::median || f == AggregateFunction::percentile) {
            if (b.values.size() < limits_.max_values_per_bucket) {
                b.values.push_back(value);  // capacity is kept when the bucket is reused: no allocation in steady state
            } else {
                // Reservoir sampling: every value of the bucket had the same chance to be kept.
                series->rng ^= series->rng << 13;
                series->rng ^= series->rng >> 7;
                series->rng ^= series->rng << 17;
                uint64_t pick = series->rng % b.count;
                if (pick < b.values.size()) b.values[pick] = value;
                ++counters_.values_sampled;
            }
        }
        ++counters_.points;
        due_ms = std::max(due_ms, start * 1000 + expire_ms + series->fuzz_ms);
    }
    return due_ms;
}

void Engine::emit_bucket(size_t aggregate, size_t compute, const std::string& name, Series& series, size_t slot,
                         const std::function<void(const Result&)>& emit) {
    const rules::Aggregate& rule = table_.aggregate(aggregate);
    const rules::Compute& c = rule.computes[compute];
    Series::Bucket& b = series.buckets[slot];
    if (b.count == 0) return;
    const size_t distance = (slot + series.buckets.size() - series.head) % series.buckets.size();
    const int64_t start = series.oldest + int64_t(distance) * rule.interval;
    int64_t ts = start + rule.interval;
    if (rule.timestamp == rules::BucketTimestamp::start) ts = start;
    if (rule.timestamp == rules::BucketTimestamp::middle) ts = start + rule.interval / 2;
    double value = 0;
    bool integer = false;
    switch (c.function) {
        case AggregateFunction::sum: value = b.sum; break;
        case AggregateFunction::count: integer = true; break;
        case AggregateFunction::max: value = b.max; break;
        case AggregateFunction::min: value = b.min; break;
        case AggregateFunction::average: value = b.sum / double(b.count); break;
        case AggregateFunction::variance:
        case AggregateFunction::stddev: {
            double mean = b.sum / double(b.count);
            value = std::max(0.0, b.squares / double(b.count) - mean * mean);
            if (c.function == AggregateFunction::stddev) value = std::sqrt(value);
            break;
        }
        case AggregateFunction::median:
        case AggregateFunction::percentile:
            std::sort(b.values.begin(), b.values.end());
            value = percentile_of(b.values.data(), b.values.size(),
                                  c.function == AggregateFunction::median ? 50 : c.percentile);
            break;
    }
    int n;
    if (integer)
        n = std::snprintf(line_, sizeof line_, "%.*s %llu %lld\n", int(name.size()), name.data(),
                          static_cast<unsigned long long>(b.count), static_cast<long long>(ts));
    else
        n = std::snprintf(line_, sizeof line_, "%.*s %f %lld\n", int(name.size()), name.data(), value,
                          static_cast<long long>(ts));
    if (n > 0 && size_t(n) < sizeof line_) {
        ++counters_.buckets_emitted;
        emit(Result {aggregate, name, std::string_view(line_, size_t(n)), start});
    } else {
        ++counters_.name_too_long;  // a value printed with %f beyond the line buffer (|value| > 1e300 or so)
    }
    b.count = 0;
    b.values.clear();
}

void Engine::tick(int64_t now_ms, const std::function<void(const Result&)>& emit) {
    for (size_t a = 0; a < series_.size(); ++a) {
        const rules::Aggregate& rule = table_.aggregate(a);
        const int64_t interval_ms = int64_t(rule.interval) * 1000, expire_ms = int64_t(rule.expire) * 1000;
        for (size_t c = 0; c < series_[a].size(); ++c)
            for (auto& [name, series] : *series_[a][c]) {
                Series& s = *series;
                const size_t n = s.buckets.size();
                for (size_t step = 0; step < n + 1; ++step) {
                    if (s.oldest * 1000 + expire_ms + s.fuzz_ms > now_ms) break;
                    emit_bucket(a, c, name, s, s.head, emit);
                    s.head = (s.head + 1) % n;
                    s.oldest += rule.interval;
                }
                // Long idle: jump the window to where stepping would have taken it (its buckets are all empty).
                if (s.oldest * 1000 + expire_ms + s.fuzz_ms <= now_ms) {
                    int64_t behind = (now_ms - (s.oldest * 1000 + expire_ms + s.fuzz_ms)) / interval_ms + 1;
                    s.oldest += behind * rule.interval;
                }
            }
    }
}

void Engine::flush(const std::function<void(const Result&)>& emit) {
    for (size_t a = 0; a < series_.size(); ++a)
        for (size_t c = 0; c < series_[a].size(); ++c)
            for (auto& [name, series] : *series_[a][c])
                for (size_t k = 0; k < series->buckets.size(); ++k)
                    emit_bucket(a, c, name, *series, (series->head + k) % series->buckets.size(), emit);
}

}  // namespace polymur::aggregate
