// The Graphite plaintext line parser (protocol/line) on anything a client can send: the input is split
// into lines as a listener splits its socket data, and the fast path must agree with the general parser.
// The input is also scanned whole as a listener scans a read (scan_lines), with each set of vector registers
// the CPU has: every '\n' found, and a line it parsed on the way is one parse_line finds canonical, with the
// same fields.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "protocol/line.hpp"

using namespace polymur::protocol;

namespace {

void check_one(std::string_view line) {
    ParsedLine fast, general;
    LineError a = parse_line(line, fast);
    LineError b = parse_line_general(line, general);
    if (a != b) std::abort();  // the two paths must decide alike
    if (a != LineError::none) return;
    if (fast.name != general.name || fast.value != general.value || fast.timestamp_is_now != general.timestamp_is_now ||
        (!fast.timestamp_is_now && fast.timestamp != general.timestamp))
        std::abort();
    // Every field points into the line and is not empty.
    for (std::string_view field : {fast.name, fast.value}) {
        if (field.empty() || field.data() < line.data() || field.data() + field.size() > line.data() + line.size())
            std::abort();
    }
    describe(a);
}

void check_scan(std::string_view input) {
    static std::vector<ScannedLine> scanned;
    scanned.resize(input.size() + 1);
    for (LineVectors vectors : {LineVectors::sse2, LineVectors::avx2}) {
        if (!use_line_vectors(vectors)) continue;
        const size_t count = scan_lines(input.data(), input.size(), scanned.data());
        size_t found = 0, start = 0;
        for (size_t at = input.find('\n'); at != std::string_view::npos; at = input.find('\n', at + 1), ++found) {
            if (found >= count || scanned[found].end != at) std::abort();
            const std::string_view line = input.substr(start, at - start);
            if (scanned[found].canonical) {
                ParsedLine expected, got;
                if (parse_line(line, expected) != LineError::none || !expected.canonical) std::abort();
                scanned_fields(line.data(), scanned[found], line.size(), got);
                if (got.name.data() != expected.name.data() || got.name != expected.name ||
                    got.value.data() != expected.value.data() || got.value != expected.value ||
                    got.timestamp.data() != expected.timestamp.data() || got.timestamp != expected.timestamp)
                    std::abort();
            }
            start = at + 1;
        }
        if (found != count) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    check_scan(input);
    check_one(input);  // the whole input as one line, newlines and all
    while (!input.empty()) {
        size_t nl = input.find('\n');
        check_one(input.substr(0, nl));
        if (nl == std::string_view::npos) break;
        input.remove_prefix(nl + 1);
    }
    return 0;
}
