#include "admin/cluster_listing.hpp"

#include "admin/command.hpp"

namespace polymur::admin {

namespace {

std::string string_list(const std::vector<std::string>& items) {
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i) out += (i ? ", \"" : "\"") + json_escape(items[i]) + "\"";
    return out + "]";
}

}  // namespace

std::string cluster_fields_json(const std::vector<ClusterListing>& clusters, const std::vector<std::string>& draining) {
    std::string out = ",\n \"clusters\": {";
    for (size_t i = 0; i < clusters.size(); ++i) {
        const ClusterListing& c = clusters[i];
        out += (i ? ",\n  \"" : "\n  \"") + json_escape(c.name) + "\": {\"type\": \"" + json_escape(c.type) +
            "\", \"members\": " + string_list(c.members) + "}";
    }
    out += clusters.empty() ? "}" : "\n }";
    out += ",\n \"draining\": " + string_list(draining);
    return out;
}

}  // namespace polymur::admin
