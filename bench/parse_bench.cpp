// The line parser alone, per form of line: CPU ns per line, best of 7 passes over 100,000 lines of
// each form (docs/PERFORMANCE.md, "Line parser"); then canonical lines as a listener meets them, in 64 KiB
// reads: split at their newlines and parsed one by one, scanned whole (scan_lines, what the listener does),
// and, for scale, only copied once (memcpy). Usage: polymur-parse-bench
#include "protocol/line.hpp"
#include "protocol/newlines.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
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

int reads(std::string (*make)(unsigned));

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
    return reads(forms[0].make);
}

namespace {

// Canonical lines in 64 KiB reads, each cut after its last whole line, as a listener's reads are.
int reads(std::string (*make)(unsigned)) {
    constexpr size_t kRead = 64 * 1024;
    std::vector<std::string> buffers(1);
    size_t total_lines = 0;
    for (unsigned i = 0; i < 100000; ++i) {
        const std::string line = make(i) + "\n";
        if (buffers.back().size() + line.size() > kRead) buffers.emplace_back();
        buffers.back() += line;
        ++total_lines;
    }
    std::unique_ptr<polymur::protocol::ScannedLine[]> scanned(new polymur::protocol::ScannedLine[kRead]);
    std::unique_ptr<char[]> copy(new char[kRead]);
    struct Way {
        const char* label;
        size_t (*run)(const std::string&, polymur::protocol::ScannedLine*, char*);
        bool checks;  // run returns the lines it found valid (the memcpy row checks nothing)
    };
    const Way ways[] = {
        {"reads: split, parse each line",
         [](const std::string& b, polymur::protocol::ScannedLine*, char*) {
             size_t valid = 0, start = 0;
             polymur::protocol::for_each_newline(b.data(), b.size(), [&](size_t end) {
                 polymur::protocol::ParsedLine parsed;
                 valid += polymur::protocol::parse_line({b.data() + start, end - start}, parsed) ==
                     polymur::protocol::LineError::none;
                 start = end + 1;
             });
             return valid;
         },
         true},
        {"reads: scan_lines",
         [](const std::string& b, polymur::protocol::ScannedLine* out, char*) {
             const size_t n = polymur::protocol::scan_lines(b.data(), b.size(), out);
             size_t valid = 0;
             for (size_t i = 0; i < n; ++i) valid += out[i].canonical;
             return valid;
         },
         true},
        {"reads: memcpy only (scale)",
         [](const std::string& b, polymur::protocol::ScannedLine*, char* to) {
             std::copy(b.begin(), b.end(), to);
             asm volatile("" : : "r"(to) : "memory");  // the copy is kept
             return size_t(0);
         },
         false},
    };
    for (const Way& way : ways) {
        double best = 1e9;
        for (int pass = 0; pass < 7; ++pass) {
            size_t valid = 0;
            const double start = cpu_seconds();
            for (int k = 0; k < 10; ++k)
                for (const std::string& b : buffers) valid += way.run(b, scanned.get(), copy.get());
            if (way.checks && valid != 10 * total_lines) {
                std::fprintf(stderr, "polymur-parse-bench: %s: a line was refused\n", way.label);
                return 1;
            }
            best = std::min(best, (cpu_seconds() - start) * 1e9 / (10.0 * static_cast<double>(total_lines)));
        }
        std::printf("%-32s %6.1f ns/line\n", way.label, best);
    }
    return 0;
}

}  // namespace
