// Cluster membership changed at runtime (admin `putdest DEST to CLUSTER`, `deldest DEST from CLUSTER` with
// --rules), kept in <state-dir>/runtime-clusters so it outlives a restart. For each changed cluster the file
// holds the members the rules file gave it when the change was made and the members it has now; the
// supervisor writes it before a change takes effect and every process applies it to its copy of the table.
// A cluster whose members the rules file changes since is left as the file says, with a note.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "route/routing_table.hpp"

namespace polymur::route {

inline constexpr const char* kRuntimeClustersFile = "runtime-clusters";

struct ClusterChange {
    std::string cluster;
    std::vector<std::string> file_members;  // host:port[:instance], as the rules file listed them then
    std::vector<std::string> members;       // the members now, in placement order
};

// The table's clusters whose members differ from the rules file's.
std::vector<ClusterChange> runtime_cluster_changes(const RoutingTable& table);

std::string format_runtime_clusters(const std::vector<ClusterChange>& changes);
// False with `error` ("line N: ...") on a line that is not what format_runtime_clusters writes.
bool parse_runtime_clusters(std::string_view text, std::vector<ClusterChange>& changes, std::string& error);

// Gives every cluster its rules file's members, then the changes that still apply. `notes` gets one line per
// change left out and why (the cluster is gone from the rules file, or the file changed its members since).
// Clusters already as wanted are not rebuilt. Deterministic: every process gets the same table from the same
// file and changes.
void apply_runtime_clusters(RoutingTable& table, const std::vector<ClusterChange>& changes,
                            std::vector<std::string>& notes);

// Reads <state_dir>/runtime-clusters and applies it when its text differs from `last_text` (which it then
// updates): what each process does when the supervisor's destination table changes. A missing file is no
// changes. False with `error` when the file cannot be read or parsed (the table is left as it was).
bool follow_runtime_clusters(RoutingTable& table, const std::string& state_dir, std::string& last_text,
                             std::vector<std::string>& notes, std::string& error);

}  // namespace polymur::route
