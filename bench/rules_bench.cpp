// Rule matching alone (route/routing_table): lines per CPU-second through RoutingTable::route for a realistic
// rules file of 50 rules and one of 500 (docs/PERFORMANCE.md, "Rules"). Usage: polymur-rules-bench [OUT_DIR]
// With OUT_DIR, also writes the two rules files and the names, to run other relays on the same input.
#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "route/routing_table.hpp"

namespace {

double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

const char* const kApps[] = {"web", "db", "cache", "queue", "auth", "search", "mail", "api", "batch", "edge"};

// Per group of 10 rules: prefix matches, regexes with captures, a rewrite, a blackhole, a stop.
std::string rules_file(size_t groups) {
    std::string text =
        "cluster main carbon_ch replication 2 10.10.0.1:2003 10.10.0.2:2003 10.10.0.3:2003 10.10.0.4:2003;\n"
        "cluster side fnv1a_ch 10.11.0.1:2003 10.11.0.2:2003 10.11.0.3:2003;\n"
        "cluster lb any_of 10.12.0.1:2003 10.12.0.2:2003;\n"
        "cluster archive forward 10.13.0.1:2003;\n";
    for (size_t g = 0; g < groups; ++g) {
        std::string app = std::string(kApps[g % 10]) + (g >= 10 ? std::to_string(g) : "");
        text += "match ^servers\\." + app + "[0-9]+\\. send to main;\n";
        text += "match ^apps\\." + app + "\\.(requests|errors)\\.count$ send to side stop;\n";
        text += "rewrite ^legacy\\." + app + "\\.([^.]+)\\.(.*)$ into apps." + app + ".\\_1.\\2;\n";
        text += "match ^stats\\.timers\\." + app + "\\. send to lb;\n";
        text += "match \\." + app + "\\.latency\\.p(50|90|99)$ send to side;\n";
        text += "match ^tmp\\." + app + "\\. send to blackhole;\n";
        text += "match ^collectd\\.[^.]+\\." + app + "-[0-9]+\\.(cpu|memory)\\. send to main archive;\n";
        text += "match ^k8s\\.[a-z0-9-]+\\." + app + "\\. send to lb stop;\n";
        text += "match ^apps\\." + app + "\\. send to archive;\n";
        text += "match ^servers\\." + app + "[0-9]+\\.disk\\.[^.]+\\.(read|write)_bytes$ send to side;\n";
    }
    text += "match * send to archive;\n";
    return text;
}

std::vector<std::string> names(size_t count, size_t groups) {
    std::vector<std::string> out;
    unsigned seed = 14;
    auto next = [&]() { return seed = seed * 1103515245u + 12345u, (seed >> 8); };
    const char* kinds[] = {"servers.%s%u.cpu.user",       "apps.%s.requests.count",
                           "legacy.%s.Req.total",         "stats.timers.%s.login.p99",
                           "host%u.%s.latency.p99",       "tmp.%s.debug",
                           "collectd.h%u.%s-%u.cpu.idle", "k8s.pod-%u.%s.restarts",
                           "apps.%s.other.gauge",         "servers.%s%u.disk.sda.read_bytes",
                           "unmatched.metric.%u.%s"};
    char buffer[256];
    for (size_t i = 0; i < count; ++i) {
        size_t g = next() % groups;
        std::string app = std::string(kApps[g % 10]) + (g >= 10 ? std::to_string(g) : "");
        unsigned n = next() % 100;
        int k = int(next() % 11);
        switch (k) {
            case 4: std::snprintf(buffer, sizeof buffer, kinds[k], n, app.c_str()); break;
            case 6: std::snprintf(buffer, sizeof buffer, kinds[k], n, app.c_str(), n % 7); break;
            case 7: std::snprintf(buffer, sizeof buffer, kinds[k], n, app.c_str()); break;
            case 10: std::snprintf(buffer, sizeof buffer, kinds[k], n, app.c_str()); break;
            default: std::snprintf(buffer, sizeof buffer, kinds[k], app.c_str(), n); break;
        }
        out.emplace_back(buffer);
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    const char* out_dir = argc > 1 ? argv[1] : nullptr;
    std::printf("%-10s %8s %14s %12s %10s\n", "rules", "names", "lines/s/core", "ns/line", "sends/line");
    for (size_t groups : {5, 50}) {
        std::string text = rules_file(groups);
        polymur::route::rules::RulesConfig config;
        std::string error;
        if (!polymur::route::rules::parse_rules_text(text, "bench.conf", config, error)) {
            std::fprintf(stderr, "%s\n", error.c_str());
            return 1;
        }
        auto table = polymur::route::RoutingTable::build(config, error);
        if (!table) {
            std::fprintf(stderr, "%s\n", error.c_str());
            return 1;
        }
        const std::vector<std::string> input = names(200000, groups);
        if (out_dir) {
            std::ofstream(std::string(out_dir) + "/rules" + std::to_string(config.rules.size()) + ".conf") << text;
            std::ofstream n(std::string(out_dir) + "/names" + std::to_string(config.rules.size()) + ".txt");
            for (const std::string& name : input) n << name << " 1 1700000000\n";
        }
        auto result = std::make_unique<polymur::route::RouteResult>();
        for (const std::string& name : input) table->route(name, "1 1700000000", nullptr, *result);  // warm
        double best = 1e9;
        size_t sends = 0;
        for (int pass = 0; pass < 5; ++pass) {
            sends = 0;
            const double start = cpu_seconds();
            for (const std::string& name : input) {
                table->route(name, "1 1700000000", nullptr, *result);
                sends += result->send_count;
            }
            best = std::min(best, cpu_seconds() - start);
        }
        std::printf("%-10zu %8zu %14.0f %12.1f %10.2f\n", config.rules.size(), input.size(),
                    double(input.size()) / best, best * 1e9 / double(input.size()),
                    double(sends) / double(input.size()));
    }
    return 0;
}
