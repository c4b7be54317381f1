// The line parser alone, per form of line: CPU ns per line, best of 7 passes over 100,000 lines of
// each form (docs/PERFORMANCE.md, "Line parser"). Usage: polymur-parse-bench
#include "protocol/line.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace {

double cpu_seconds() {
    timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

std::string collectd_name(unsigned i) {
    static const char* const kinds[] = {"cpu-user", "cpu-system", "cpu-idle", "cpu-wait"};
    char name[128];
    std::snprintf(name, sizeof name, "collectd.host%04u.cpu-%u.%s", i / 64, (i / 4) % 16, kinds[i % 4]);
    return name;
}

}  // namespace

int main() {
    using polymur::protocol::LineError;
    using polymur::protocol::ParsedLine;
    struct Form {
        const char* label;
        std::string (*make)(unsigned);
    };
    const Form forms[] = {
        {"canonical (the loadgen's form)",
         [](unsigned i) { return collectd_name(i) + " " + std::to_string(i % 1000) + ".5 1700000000"; }},
        {"tab-separated", [](unsigned i) { return collectd_name(i) + "\t" + std::to_string(i) + "\t1700000000"; }},
        {"-1 timestamp", [](unsigned i) { return collectd_name(i) + " " + std::to_string(i) + " -1"; }},
        {"UTF-8 name",
         [](unsigned i) { return "m\xc3\xa9trique." + collectd_name(i) + " " + std::to_string(i) + " 1700000000"; }},
    };
    for (const Form& form : forms) {
        std::vector<std::string> lines;
        for (unsigned i = 0; i < 100000; ++i) lines.push_back(form.make(i));
        double best = 1e9;
        for (int pass = 0; pass < 7; ++pass) {
            size_t valid = 0;
            double start = cpu_seconds();
            for (int k = 0; k < 10; ++k)
                for (const std::string& line : lines) {
                    ParsedLine parsed;
                    valid += polymur::protocol::parse_line(line, parsed) == LineError::none;
                }
            if (valid != 10 * lines.size()) {
                std::fprintf(stderr, "polymur-parse-bench: %s: a line was refused\n", form.label);
                return 1;
            }
            best = std::min(best, (cpu_seconds() - start) * 1e9 / (10.0 * static_cast<double>(lines.size())));
        }
        std::printf("%-32s %6.1f ns/line\n", form.label, best);
    }
    return 0;
}
