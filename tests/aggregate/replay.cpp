// Replays timestamped input through the routing table and the aggregation engine, for the differential test
// against carbon-c-relay (tests/aggregate/differential.py). stdin:
//   @NOW_MS            set the clock (Unix milliseconds) and emit what is due
//   name value ts      a metric received now: routed, and fed to the aggregates it reaches
//   @END               emit everything still open, as if the clock ran on for ever
// stdout: the emitted lines; stderr at the end: the engine's counters.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>

#include "aggregate/engine.hpp"
#include "route/routing_table.hpp"

int main(int argc, char** argv) {
    using namespace polymur;
    if (argc != 2) {
        std::cerr << "usage: aggregate_replay RULES-FILE < events\n";
        return 2;
    }
    std::string error;
    auto table = route::compile_rules_file(argv[1], error);
    if (!table) {
        std::cerr << "aggregate_replay: " << error << "\n";
        return 1;
    }
    aggregate::Engine engine(*table);
    auto result = std::make_unique<route::RouteResult>();
    int64_t now_ms = 0;
    auto print = [](const aggregate::Result& r) { std::cout << r.line; };
    std::string line;
    while (std::getline(std::cin, line)) {
        if (line == "@END") {
            engine.tick(now_ms + (int64_t(1) << 40), print);
            continue;
        }
        if (!line.empty() && line[0] == '@') {
            now_ms = std::strtoll(line.c_str() + 1, nullptr, 10);
            engine.tick(now_ms, print);
            continue;
        }
        size_t a = line.find(' '), b = line.rfind(' ');
        if (a == std::string::npos || a == b) continue;
        std::string name = line.substr(0, a);
        double value = std::strtod(line.c_str() + a + 1, nullptr);
        long long ts = std::strtoll(line.c_str() + b + 1, nullptr, 10);
        table->route(name, std::string_view(line).substr(a + 1), nullptr, *result);
        for (size_t i = 0; i < result->feed_count; ++i)
            engine.add(result->feeds[i].aggregate, result->name_of(result->feeds[i]), value, ts, now_ms / 1000);
    }
    const auto& c = engine.counters();
    std::cerr << "points " << c.points << " late " << c.late << " future " << c.future << " emitted "
              << c.buckets_emitted << "\n";
    return 0;
}
