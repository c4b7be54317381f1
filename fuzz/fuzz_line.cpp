// The Graphite plaintext line parser (protocol/line) on anything a client can send: the input is split
// into lines as a listener splits its socket data, and the fast path must agree with the general parser.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    check_one(input);  // the whole input as one line, newlines and all
    while (!input.empty()) {
        size_t nl = input.find('\n');
        check_one(input.substr(0, nl));
        if (nl == std::string_view::npos) break;
        input.remove_prefix(nl + 1);
    }
    return 0;
}
