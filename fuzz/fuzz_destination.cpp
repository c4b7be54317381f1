// host:port, host:port[:instance] and https://host:port[/path] parsing (common/net, route/destination).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/destination_parsers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    polymur::fuzz::parse_destination_every_way(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
