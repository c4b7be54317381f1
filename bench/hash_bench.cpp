// carbon_ch placement alone (route/hash_ring, route/carbon_ch_ahead): ns per name per core for the MD5
// position one name at a time and 16 side by side (each vector width the CPU has), and for the whole lookup
// the listener does per line (RoutingTable::route over carbon_ch to 2 destinations, as --distribution
// hash-route), without and with the names hashed ahead; then the cluster's slots as the listener asks for them
// (one_cluster_slots, and the same kept per position). docs/PERFORMANCE.md, "How far from the machine's limit".
// Usage: polymur-hash-bench [NAMES] (default 100000 collectd-like names, as polymur-loadgen sends).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

#include "route/carbon_ch_ahead.hpp"
#include "route/hash_ring.hpp"
#include "route/position_slots.hpp"
#include "route/routing_table.hpp"

namespace {

using namespace polymur::route;

double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// The best of 5 passes over all names, in ns per name.
template <class Pass>
double best_ns(size_t names, Pass&& pass) {
    pass();  // warm
    double best = 1e9;
    for (int round = 0; round < 5; ++round) {
        const double start = cpu_seconds();
        pass();
        best = std::min(best, cpu_seconds() - start);
    }
    return best * 1e9 / double(names);
}

}  // namespace

int main(int argc, char** argv) {
    const size_t count = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 100000;
    std::vector<std::string> names;
    static const char* const kKinds[] = {"user", "system", "idle", "wait", "nice", "steal", "interrupt", "softirq"};
    for (size_t i = 0; i < count; ++i)  // polymur-loadgen's names
        names.push_back("collectd.host" + std::to_string(10000 + i / 64).substr(1) + ".cpu-" +
                        std::to_string(i / 8 % 8) + ".cpu-" + kKinds[i % 8]);
    std::vector<std::string_view> views(names.begin(), names.end());
    std::vector<uint32_t> positions(count);
    uint64_t check = 0;

    std::printf("%-44s %10s\n", "carbon_ch placement", "ns/name");
    std::printf("%-44s %10.1f\n", "MD5 position, one name at a time", best_ns(count, [&] {
                    for (size_t i = 0; i < count; ++i) positions[i] = carbon_ch_position(views[i]);
                }));
    for (auto [width, label] : {std::pair {VectorWidth::baseline, "MD5 positions, 16 side by side (SSE2)"},
                                std::pair {VectorWidth::avx2, "MD5 positions, 16 side by side (AVX2)"},
                                std::pair {VectorWidth::avx512, "MD5 positions, 16 side by side (AVX-512)"}}) {
        if (!use_vector_width(width)) continue;
        std::printf("%-44s %10.1f\n", label, best_ns(count, [&] {
                        for (size_t i = 0; i < count; i += kAheadBatch)
                            carbon_ch_positions(views.data() + i, std::min(kAheadBatch, count - i),
                                                positions.data() + i);
                    }));
    }
    for (VectorWidth widest : {VectorWidth::avx512, VectorWidth::avx2, VectorWidth::baseline})
        if (use_vector_width(widest)) break;

    std::vector<Destination> destinations(2);
    std::string error;
    if (!parse_destination("127.0.0.1:2103:a", destinations[0], error) ||
        !parse_destination("127.0.0.1:2203:b", destinations[1], error)) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    auto table = RoutingTable::build_implicit(false, HashType::carbon_ch, destinations, 1, false, error);
    if (!table) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    auto result = std::make_unique<RouteResult>();
    std::printf("%-44s %10.1f\n", "route(), one name at a time", best_ns(count, [&] {
                    for (size_t i = 0; i < count; ++i) {
                        table->route(views[i], "1 1700000000", nullptr, *result);
                        check += result->sends[0].slot;
                    }
                }));
    std::printf("%-44s %10.1f\n", "route(), names hashed ahead 16 at a time", best_ns(count, [&] {
                    for (size_t i = 0; i < count; i += kAheadBatch) {
                        const size_t n = std::min(kAheadBatch, count - i);
                        const CarbonChAhead ahead(views.data() + i, n);
                        for (size_t k = 0; k < n; ++k) {
                            table->route(views[i + k], "1 1700000000", nullptr, *result);
                            check += result->sends[0].slot;
                        }
                    }
                }));
    // What the listener does per line with --distribution hash-route: one_cluster_slots() on names hashed ahead,
    // then the same answered per position (route/position_slots.hpp) as the listener does.
    PositionSlots by_position;
    for (bool slots_by_position : {false, true}) {
        std::printf("%-44s %10.1f\n",
                    slots_by_position ? "  the same, slots per position" : "one_cluster_slots(), hashed ahead",
                    best_ns(count, [&] {
                        uint16_t slots[RouteResult::kMaxSends];
                        for (size_t i = 0; i < count; i += kAheadBatch) {
                            const size_t n = std::min(kAheadBatch, count - i);
                            const CarbonChAhead ahead(views.data() + i, n);
                            for (size_t k = 0; k < n; ++k) {
                                if (slots_by_position) by_position.slots(*table, views[i + k], nullptr, slots);
                                else table->one_cluster_slots(views[i + k], nullptr, slots);
                                check += slots[0];
                            }
                        }
                    }));
    }
    std::printf("(%llu)\n", static_cast<unsigned long long>(check % 10));  // keeps the lookups
    return 0;
}
