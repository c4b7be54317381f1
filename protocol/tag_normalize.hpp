// Tagged series names normalized the way carbon-relay does with TAG_RELAY_NORMALIZED = True
// (graphite-carbon's TaggedSeries.parse(name).path), so a relay that hashes and forwards the
// normalized name sends `cpu;host=a;dc=x` and `cpu;dc=x;host=a` to the same cache under the name
// graphite-web looks up.
//
//   name;tag=value;...         tags sorted (as the strings "tag=value"), the last of a repeated
//                              tag kept, a `name` tag dropped, leading '~' stripped from the name
//   name{tag="value",...}      OpenMetrics form, rewritten as name;tag=value;... (\" and \\ unescaped)
//
// Names carbon cannot parse (empty tag or value, a tag with ; ! ^ =, a value starting with ~, a
// segment without '=', an empty name) are forwarded unchanged, as carbon-relay does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace polymur::protocol {

class TagNormalizer {
public:
    // The normalized name, valid until the next call; `name` itself when nothing changes or carbon
    // could not parse it. Allocates only while its buffers grow to the longest name seen.
    std::string_view normalize(std::string_view name);

private:
    struct Tag {
        uint32_t offset;    // in scratch_: "tag=value"
        uint32_t tag_size;  // bytes before the '='
        uint32_t size;      // of "tag=value"
        uint32_t order;     // position in the name: a repeated tag keeps the last
    };
    bool add_tag(std::string_view tag, std::string_view value, bool unescape);
    std::string_view finish(std::string_view metric);

    std::string scratch_;
    std::string out_;
    std::vector<Tag> tags_;
};

}  // namespace polymur::protocol
