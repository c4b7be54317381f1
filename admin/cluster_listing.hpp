// getdest's cluster fields with --rules, rendered from plain structs: each cluster's type and members now
// (after putdest ... to / deldest ... from) and the destinations in no cluster that drain before they go.
#pragma once

#include <string>
#include <vector>

namespace polymur::admin {

struct ClusterListing {
    std::string name;
    std::string type;                  // forward, any_of, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch
    std::vector<std::string> members;  // host:port[:instance], in placement order
};

// `,\n "clusters": {...},\n "draining": [...]`: the fields getdest adds inside its JSON object.
std::string cluster_fields_json(const std::vector<ClusterListing>& clusters, const std::vector<std::string>& draining);

}  // namespace polymur::admin
