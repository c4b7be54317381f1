// The tagged-name normalizer (--tag-normalize, protocol/tag_normalize) on any metric name a client can send:
// it must not crash or grow a name beyond its unescaping, and a name in carbon's form (name;tag=value...)
// normalizes to a fixed point. carbon's own normalization is not a fixed point everywhere, and ours follows
// it: an OpenMetrics name whose metric holds a ';', or a result that ends like the OpenMetrics form, reads
// differently the second time, so those are only run.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/tag_normalize.hpp"

namespace {

// carbon's TaggedSeries.parse: the OpenMetrics form when the name ends with "} and holds a '{'.
bool openmetrics_form(std::string_view name) {
    return name.size() >= 2 && name.substr(name.size() - 2) == "\"}" && name.find('{') != std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static polymur::protocol::TagNormalizer normalizer;
    const std::string_view name(reinterpret_cast<const char*>(data), size);
    const std::string once(normalizer.normalize(name));  // the view lives only until the next call
    if (once.size() > size) std::abort();                // it only reorders, drops and unescapes
    if (openmetrics_form(name) || openmetrics_form(once)) return 0;
    if (normalizer.normalize(once) != once) std::abort();
    return 0;
}
