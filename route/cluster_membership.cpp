#include "route/cluster_membership.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace polymur::route {

namespace {

std::string joined(const std::vector<std::string>& words) {
    std::string out;
    for (const std::string& word : words) out += (out.empty() ? "" : " ") + word;
    return out;
}

}  // namespace

std::vector<ClusterChange> runtime_cluster_changes(const RoutingTable& table) {
    std::vector<ClusterChange> changes;
    for (size_t c = 0; c < table.cluster_count(); ++c)
        if (table.cluster_member_texts(c) != table.cluster_file_members(c))
            changes.push_back({table.cluster_name(c), table.cluster_file_members(c), table.cluster_member_texts(c)});
    return changes;
}

std::string format_runtime_clusters(const std::vector<ClusterChange>& changes) {
    if (changes.empty()) return "";
    std::string out =
        "# polymur: cluster members changed by putdest ... to / deldest ... from; written by polymur.\n"
        "# 'file' is what the rules file listed when the change was made; 'now' is what the cluster has.\n";
    for (const ClusterChange& change : changes) {
        out += "cluster " + change.cluster + " file " + joined(change.file_members) + "\n";
        out += "cluster " + change.cluster + " now " + joined(change.members) + "\n";
    }
    return out;
}

bool parse_runtime_clusters(std::string_view text, std::vector<ClusterChange>& changes, std::string& error) {
    changes.clear();
    std::istringstream in {std::string(text)};
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream words(line);
        std::string keyword, cluster, which, member;
        words >> keyword >> cluster >> which;
        std::vector<std::string> members;
        while (words >> member) members.push_back(member);
        if (keyword != "cluster" || cluster.empty() || (which != "file" && which != "now") || members.empty()) {
            error = "line " + std::to_string(number) + ": expected 'cluster NAME file|now MEMBER...'";
            return false;
        }
        if (which == "file") {
            changes.push_back({cluster, std::move(members), {}});
        } else if (changes.empty() || changes.back().cluster != cluster || !changes.back().members.empty()) {
            error = "line " + std::to_string(number) + ": 'cluster " + cluster + " now' without its 'file' line";
            return false;
        } else {
            changes.back().members = std::move(members);
        }
    }
    if (!changes.empty() && changes.back().members.empty()) {
        error = "cluster " + changes.back().cluster + ": a 'file' line without its 'now' line";
        return false;
    }
    return true;
}

void apply_runtime_clusters(RoutingTable& table, const std::vector<ClusterChange>& changes,
                            std::vector<std::string>& notes) {
    std::vector<const std::vector<std::string>*> wanted(table.cluster_count());
    for (size_t c = 0; c < table.cluster_count(); ++c) wanted[c] = &table.cluster_file_members(c);
    for (const ClusterChange& change : changes) {
        const long c = table.find_cluster(change.cluster);
        if (c < 0) {
            notes.push_back("cluster " + change.cluster +
                            " is not in the rules file any more; its runtime members are dropped (they were: " +
                            joined(change.members) + ")");
        } else if (change.file_members != table.cluster_file_members(size_t(c))) {
            notes.push_back("cluster " + change.cluster + ": the rules file changed its members since the runtime " +
                            "changes were made (then: " + joined(change.file_members) + "; now: " +
                            joined(table.cluster_file_members(size_t(c))) + "); the file's members apply, the " +
                            "runtime ones (" + joined(change.members) + ") are dropped");
        } else {
            wanted[size_t(c)] = &change.members;
        }
    }
    for (size_t c = 0; c < table.cluster_count(); ++c) {
        if (*wanted[c] == table.cluster_member_texts(c)) continue;
        std::string error;
        if (table.set_cluster_members(c, *wanted[c], error)) continue;
        notes.push_back("cluster " + table.cluster_name(c) + ": runtime members dropped: " + error);
        std::string ignored;
        if (table.cluster_member_texts(c) != table.cluster_file_members(c))
            table.set_cluster_members(c, table.cluster_file_members(c), ignored);  // what compiled at the start
    }
}

bool follow_runtime_clusters(RoutingTable& table, const std::string& state_dir, std::string& last_text,
                             std::vector<std::string>& notes, std::string& error) {
    const std::string path = state_dir + "/" + kRuntimeClustersFile;
    std::string text;
    std::ifstream in(path);
    if (in) {
        std::ostringstream all;
        all << in.rdbuf();
        if (in.bad()) {
            error = path + ": cannot read: " + std::strerror(errno);
            return false;
        }
        text = all.str();
    } else if (errno != ENOENT) {
        error = path + ": cannot open: " + std::strerror(errno);
        return false;
    }
    if (text == last_text) return true;
    std::vector<ClusterChange> changes;
    if (!parse_runtime_clusters(text, changes, error)) {
        error = path + ": " + error;
        return false;
    }
    apply_runtime_clusters(table, changes, notes);
    last_text = std::move(text);
    return true;
}

}  // namespace polymur::route
