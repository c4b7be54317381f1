// Aggregation alone (route/routing_table + aggregate/engine): points per CPU-second through route() and
// Engine::add for 20 aggregate rules over 100,000 distinct input series (docs/PERFORMANCE.md, "Aggregation").
// Usage: polymur-aggregate-bench [OUT_DIR]. With OUT_DIR, also writes the rules file (with a sink cluster at
// 127.0.0.1:9, which aggregate_compare.py points at its sink) and the input lines, so bench/aggregate_compare.py runs carbon-c-relay on the same input.
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "aggregate/engine.hpp"
#include "route/routing_table.hpp"

namespace {

double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

constexpr int kRules = 20, kDcs = 10, kHosts = 500, kMetricsPerRule = 1;  // 20 * 10 * 500 = 100,000 series

std::string rules_file() {
    std::string text = "cluster sink forward 127.0.0.1:9;\n";
    for (int r = 0; r < kRules; ++r) {
        std::string m = "m" + std::to_string(r);
        text += "aggregate ^sys\\.(dc[0-9]+)\\.(host[0-9]+)\\." + m +
            "$ every 10 seconds expire after 30 seconds\n"
            "  compute sum write to agg.\\1." +
            m +
            ".sum\n"
            "  compute count write to agg.\\1." +
            m +
            ".count\n"
            "  compute max write to agg.all." +
            m +
            ".max\n"
            "  compute percentile95 write to agg.\\1." +
            m +
            ".p95\n"
            "  send to sink stop;\n";
    }
    text += "match * send to sink;\n";
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace polymur;
    const std::string text = rules_file();
    route::rules::RulesConfig config;
    std::string error;
    if (!route::rules::parse_rules_text(text, "bench.conf", config, error)) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    auto table = route::RoutingTable::build(config, error);
    if (!table) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 1;
    }
    std::vector<std::string> names;
    for (int r = 0; r < kRules * kMetricsPerRule; ++r)
        for (int d = 0; d < kDcs; ++d)
            for (int h = 0; h < kHosts; ++h)
                names.push_back("sys.dc" + std::to_string(d) + ".host" + std::to_string(h) + ".m" + std::to_string(r));
    const int64_t now = 1700000000;
    if (argc > 1) {
        std::ofstream(std::string(argv[1]) + "/aggregate.conf") << text;
        std::ofstream lines(std::string(argv[1]) + "/aggregate-lines.txt");
        // Five points per series inside the open window (-1 timestamp: carbon-c-relay and polymur read it as now).
        for (int round = 0; round < 5; ++round)
            for (const std::string& name : names) lines << name << ' ' << (round * 7 + 1) << " -1\n";
    }
    aggregate::Engine engine(*table);
    auto result = std::make_unique<route::RouteResult>();
    size_t emitted = 0;
    auto count = [&](const aggregate::Result&) { ++emitted; };
    // A warm-up round creates the series (one allocation each, once); the measured rounds are the steady state.
    const int rounds = 10;
    double cpu_create = 0, cpu_steady = 0;
    for (int round = 0; round <= rounds; ++round) {
        double start = cpu_seconds();
        for (size_t i = 0; i < names.size(); ++i) {
            table->route(names[i], "1 1700000000", nullptr, *result);
            for (size_t f = 0; f < result->feed_count; ++f)
                engine.add(result->feeds[f].aggregate, result->name_of(result->feeds[f]), double(i % 1000),
                           now - 5 + round % 3, now);
        }
        double spent = cpu_seconds() - start;
        (round == 0 ? cpu_create : cpu_steady) += spent;
    }
    double start = cpu_seconds();
    engine.tick((now + 3600) * 1000, count);
    double cpu_emit = cpu_seconds() - start;
    std::printf("aggregation: %d rules, %zu input series, %zu output series\n", kRules, names.size(),
                engine.series_count());
    std::printf("  first point of each series (creates them): %.0f points/s per core\n",
                double(names.size()) / cpu_create);
    std::printf("  steady state (route + add):                %.0f points/s per core\n",
                double(names.size()) * rounds / cpu_steady);
    std::printf("  emission: %zu buckets in %.3f s CPU\n", emitted, cpu_emit);
    return 0;
}
