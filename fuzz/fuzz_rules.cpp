// carbon-c-relay rules files (route/rules_parser), compiled (route/routing_table) and routed: any text is either
// refused with a "file:line: reason" or gives a table that routes names within its fixed buffers.
// Includes resolve to the input itself (depth-limited by the parser), so include paths are exercised too.
// Registration, once fuzz/CMakeLists.txt (h-fuzz) is in main:
//   polymur_fuzzer(fuzz_rules MAX_LEN 8192 LIBRARIES polymur_route SEEDS ${CMAKE_SOURCE_DIR}/tests/data/rules)
// Run by hand meanwhile: clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_rules.cpp
//   route/{rules_parser,routing_table,hash_ring,destination}.cpp -lre2 && ./a.out tests/data/rules
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "route/routing_table.hpp"
#include "route/rules_parser.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    using namespace polymur::route;
    const std::string text(reinterpret_cast<const char*>(data), size);
    rules::IncludeResolver resolve = [](const std::string& pattern, std::vector<std::string>& files, std::string&) {
        files.push_back(pattern);
        return true;
    };
    rules::FileReader read = [&](const std::string&, std::string& out, std::string&) {
        out = text;
        return true;
    };
    rules::RulesConfig config;
    std::string error;
    if (!rules::parse_rules_text(text, "fuzz.conf", config, error, resolve, read)) {
        if (error.empty()) __builtin_trap();  // every refusal says why
        return 0;
    }
    std::unique_ptr<RoutingTable> table = RoutingTable::build(config, error);
    if (!table) return 0;
    static RouteResult result;
    static const char* const names[] = {
        "", "a", "servers.web01.cpu.user", "foo.A.b.bar", "..", "x;tag=1", "\xff\xfe", "sys.load 1 2"};
    bool up[kMaxRouteDestinations];
    for (size_t i = 0; i < kMaxRouteDestinations; ++i) up[i] = (i % 3) != 1;
    for (const char* name : names) {
        table->route(name, "1 1700000000", nullptr, result);
        table->route(name, "", up, result);
        if (result.send_count > RouteResult::kMaxSends || result.name_count > RouteResult::kMaxNames) __builtin_trap();
        for (size_t i = 0; i < result.send_count; ++i)
            if (result.sends[i].slot >= table->slot_count() || result.sends[i].name >= result.name_count)
                __builtin_trap();
    }
    return 0;
}
