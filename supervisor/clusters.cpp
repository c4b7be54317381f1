// The supervisor's side of --rules: the routing table is built once here and inherited by every child
// (Heritage::rules); each destination it names is registered like a --destinations entry (its own queue and
// output process), once however many clusters list it. The admin protocol changes cluster membership at
// runtime (putdest DEST to CLUSTER, deldest DEST from CLUSTER): the change is written to
// <state-dir>/runtime-clusters before it takes effect, and every process applies that file to its table
// (route/cluster_membership.hpp) when the destination table's generation changes.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "admin/cluster_listing.hpp"
#include "common/durable_file.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/validate.hpp"
#include "route/cluster_membership.hpp"
#include "supervisor/supervisor.hpp"

namespace polymur {

namespace {

std::string cluster_names(const route::RoutingTable& table) {
    std::string out;
    for (size_t c = 0; c < table.cluster_count(); ++c) out += (c ? ", " : "") + table.cluster_name(c);
    return out;
}

}  // namespace

bool Supervisor::setup_rules() {
    std::string error;
    std::vector<std::string> warnings;
    rules_sources_.clear();
    rules_table_ = route::compile_rules_file(config_.rules, error, &warnings, &rules_sources_);
    if (!rules_table_) {
        LOG_ERROR("--rules: %s", error.c_str());
        return false;
    }
    for (const std::string& warning : warnings) LOG_WARN("--rules: %s", warning.c_str());
    load_runtime_clusters();
    for (size_t slot = 0; slot < rules_table_->slot_count(); ++slot) {
        if (!rules_table_->slot_in_cluster(slot)) continue;  // a file member a deldest ... from took out
        if (!add_destination(rules_table_->slot_text(slot), false, error)) {
            LOG_ERROR("--rules %s: %s", config_.rules.c_str(), error.c_str());
            return false;
        }
    }
    LOG_NOTICE("--rules %s: %zu rules, %zu clusters, %zu destinations", config_.rules.c_str(),
               rules_table_->rule_count(), rules_table_->cluster_count(), rules_table_->slot_count());
    return true;
}

// The runtime membership of the last run, as far as it still fits the rules file; the file is then rewritten
// to what applies, so what was left out is said once.
void Supervisor::load_runtime_clusters() {
    const std::string path = config_.state_dir + "/" + route::kRuntimeClustersFile;
    std::ifstream in(path);
    if (!in) return;
    std::ostringstream text;
    text << in.rdbuf();
    std::vector<route::ClusterChange> changes;
    std::string error;
    if (!route::parse_runtime_clusters(text.str(), changes, error)) {
        const std::string aside = path + ".rejected";
        const bool moved = std::rename(path.c_str(), aside.c_str()) == 0;
        LOG_ERROR("%s: %s; the rules file's members apply%s", path.c_str(), error.c_str(),
                  moved ? ("; the file is kept as " + aside).c_str() : "");
        return;
    }
    std::vector<std::string> notes;
    route::apply_runtime_clusters(*rules_table_, changes, notes);
    for (const std::string& note : notes) LOG_WARN("%s: %s", path.c_str(), note.c_str());
    const auto applied = route::runtime_cluster_changes(*rules_table_);
    for (const route::ClusterChange& change : applied) {
        std::string members;
        for (const std::string& m : change.members) members += " " + m;
        LOG_NOTICE("%s: cluster %s has the members set at runtime:%s", path.c_str(), change.cluster.c_str(),
                   members.c_str());
    }
    if (!notes.empty() && !save_runtime_clusters(error))
        LOG_ERROR("%s; kept the previous file, which gives the same members with this rules file", error.c_str());
}

bool Supervisor::save_runtime_clusters(std::string& error) {
    const std::string path = config_.state_dir + "/" + route::kRuntimeClustersFile;
    const std::string text = route::format_runtime_clusters(route::runtime_cluster_changes(*rules_table_));
    if (text.empty() && access(path.c_str(), F_OK) != 0) return true;
    return replace_file_durably(path, text, error);
}

// The destination slot registered for a table address (host:port), or -1.
long Supervisor::registered_slot(const std::string& address) const {
    const long table_slot = rules_table_->find_slot(address);
    if (table_slot < 0) return -1;
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        const Destination& d = destinations_[slot];
        if (d.in_use && !d.console && rules_table_->find_slot(d.text) == table_slot) return long(slot);
    }
    return -1;
}

std::string Supervisor::putdest_to(const std::string& destination, const std::string& cluster) {
    if (!rules_table_) return admin::Backend::putdest_to(destination, cluster);
    return change_clusters(true, destination, cluster);
}

std::string Supervisor::deldest_from(const std::string& destination, const std::string& cluster) {
    if (!rules_table_) return admin::Backend::deldest_from(destination, cluster);
    return change_clusters(false, destination, cluster);
}

// putdest adds `destination` at the end of `cluster`'s members (the plain form: of the only cluster);
// deldest takes it out of `cluster` (the plain form: of every cluster that lists it). The membership file is
// written first; a destination no cluster lists any more drains its queue and is then removed.
std::string Supervisor::change_clusters(bool add, const std::string& destination, const std::string& cluster) {
    const char* verb = add ? "putdest" : "deldest";
    route::Destination parsed;
    std::string error;
    if (!route::parse_destination(destination, parsed, error)) return "error: " + error + "\n";
    if (!parsed.wire.plain())
        return "error: " + net::printable(destination) +
            ": cluster members are host:port[:instance] (a rules file's members; pickle://, tls:// and https:// are "
            "--destinations forms)\n";
    const std::string address = parsed.address();
    const std::string text = address + (parsed.instance ? ":" + *parsed.instance : "");
    auto lists = [&](size_t c) {
        const auto& members = rules_table_->cluster_member_texts(c);
        return std::any_of(members.begin(), members.end(), [&](const std::string& m) {
            route::Destination other;
            std::string ignored;
            return route::parse_destination(m, other, ignored) && other.address() == address;
        });
    };

    std::vector<size_t> targets;  // the clusters to change
    if (!cluster.empty()) {
        const long c = rules_table_->find_cluster(cluster);
        if (c < 0)
            return "error: no cluster " + net::printable(cluster) +
                " in the rules file (clusters: " + cluster_names(*rules_table_) + ")\n";
        if (add && lists(size_t(c))) return "error: " + address + " is already a member of cluster " + cluster + "\n";
        if (!add && !lists(size_t(c))) return "error: " + address + " is not a member of cluster " + cluster + "\n";
        targets.push_back(size_t(c));
    } else if (add) {
        if (rules_table_->cluster_count() != 1)
            return "error: with --rules, putdest names the cluster: putdest " + net::printable(destination) +
                " to CLUSTER (clusters: " + cluster_names(*rules_table_) + ")\n";
        if (lists(0))
            return "error: " + address + " is already a member of cluster " + rules_table_->cluster_name(0) + "\n";
        targets.push_back(0);
    } else {
        for (size_t c = 0; c < rules_table_->cluster_count(); ++c)
            if (lists(c)) targets.push_back(c);
    }

    // carbon-c-relay's rules for a server several clusters name: one instance (or none) everywhere, and no
    // earlier cluster names a member of an any_of or failover cluster.
    for (size_t c = 0; add && c < rules_table_->cluster_count(); ++c) {
        if (c == targets[0] || !lists(c)) continue;
        const size_t later = std::max(c, targets[0]);
        const std::string type = rules_table_->cluster_type(later);
        if (type == "any_of" || type == "failover")
            return "error: " + address + " is a member of cluster " + rules_table_->cluster_name(c) +
                "; carbon-c-relay refuses a member of an any_of or failover cluster that an earlier cluster names\n";
        for (const std::string& m : rules_table_->cluster_member_texts(c)) {
            route::Destination other;
            std::string ignored;
            if (route::parse_destination(m, other, ignored) && other.address() == address &&
                other.instance != parsed.instance)
                return "error: " + address + " is a member of cluster " + rules_table_->cluster_name(c) + " as " + m +
                    "; a server has the same instance (or none) in every cluster, as carbon-c-relay requires\n";
        }
    }

    long slot = registered_slot(address);
    if (!add && targets.empty()) {
        // In no cluster: a destination still draining after its last deldest ... from; deldest gives it up now.
        if (slot >= 0 && destinations_[size_t(slot)].draining && !destinations_[size_t(slot)].removing) {
            const std::string name = destinations_[size_t(slot)].text;
            const uint64_t queued = destinations_[size_t(slot)].queue->queued_lines();
            begin_removal(uint32_t(slot));
            finish_removals();
            return "Unregistered destination: " + name + " (in no cluster; its " + std::to_string(queued) +
                " undelivered lines are given up)\n";
        }
        return "error: " + address + " is not a member of any cluster\n";
    }
    if (slot >= 0 && destinations_[size_t(slot)].removing)
        return "error: destination " + destinations_[size_t(slot)].text +
            " is still being removed; try again in a "
            "moment\n";
    if (add && slot < 0) {
        if (std::string refusal = own_listener_refusal(text); !refusal.empty()) return refusal;
        const size_t registered = static_cast<size_t>(std::count_if(
            destinations_.begin(), destinations_.end(), [](const Destination& d) { return d.in_use && !d.console; }));
        if (registered >= config_.max_destinations)
            return "error: " + std::to_string(registered) +
                " destinations are registered, the most --max-destinations allows; deldest one first\n";
    }

    // The new member lists; nothing changes unless every cluster can take its own.
    std::vector<std::vector<std::string>> before;
    for (size_t c : targets) {
        before.push_back(rules_table_->cluster_member_texts(c));
        std::vector<std::string> members = before.back();
        if (add) {
            members.push_back(text);
        } else {
            members.erase(std::remove_if(members.begin(), members.end(),
                                         [&](const std::string& m) {
                                             route::Destination other;
                                             std::string ignored;
                                             return route::parse_destination(m, other, ignored) &&
                                                 other.address() == address;
                                         }),
                          members.end());
            if (members.empty()) {
                for (size_t k = 0; k + 1 < before.size(); ++k) {
                    std::string ignored;
                    rules_table_->set_cluster_members(targets[k], before[k], ignored);
                }
                return "error: " + address + " is the only member of cluster " + rules_table_->cluster_name(c) +
                    "; a cluster needs at least one (putdest another first)\n";
            }
        }
        if (!rules_table_->set_cluster_members(c, members, error)) {
            for (size_t k = 0; k + 1 < before.size(); ++k) {
                std::string ignored;
                rules_table_->set_cluster_members(targets[k], before[k], ignored);
            }
            return "error: " + error + "\n";
        }
    }
    auto undo = [&] {
        for (size_t k = 0; k < targets.size(); ++k) {
            std::string ignored;
            rules_table_->set_cluster_members(targets[k], before[k], ignored);
        }
    };
    // A new destination is registered before any table names it: until the membership file is written and
    // the generation published, the workers see it registered and in no cluster, and route nothing to it.
    bool registered_now = false;
    if (add && slot < 0) {
        if (!add_destination(rules_table_->slot_text(size_t(rules_table_->find_slot(address))), false, error)) {
            undo();
            return "error: " + error + "\n";
        }
        registered_now = true;
        slot = registered_slot(address);
    }
    if (!save_runtime_clusters(error)) {
        LOG_ERROR("%s %s refused: %s", verb, destination.c_str(), error.c_str());
        undo();
        if (registered_now) {
            begin_removal(uint32_t(slot));
            finish_removals();
        }
        return "error: " + error + "; nothing changed\n";
    }
    publish_generation();

    std::string names;
    for (size_t c : targets) names += (names.empty() ? "" : ", ") + rules_table_->cluster_name(c);
    Destination& d = destinations_[size_t(slot)];
    if (add) {
        d.draining = false;
        LOG_NOTICE("destination %s: added to cluster %s (%zu members)", d.text.c_str(), names.c_str(),
                   rules_table_->cluster_member_texts(targets[0]).size());
        std::string reply = "Registered destination: " + text + " in cluster " + names + "\n";
        if (std::string warning = unresolvable_destination_warning(text); !warning.empty()) {
            LOG_WARN("%s", warning.c_str());
            reply += "warning: " + warning + "\n";
        }
        return reply;
    }
    std::string reply = "Unregistered destination: " + address + " from cluster " + names + "\n";
    LOG_NOTICE("destination %s: removed from cluster %s", d.text.c_str(), names.c_str());
    if (!rules_table_->slot_in_cluster(size_t(rules_table_->find_slot(address)))) {
        d.draining = true;
        d.draining_generation = control_->header.generation.load(std::memory_order_acquire);
        const uint64_t queued = d.queue ? d.queue->queued_lines() : 0;
        LOG_NOTICE("destination %s: in no cluster now; unregistered once its %llu queued lines are delivered",
                   d.text.c_str(), static_cast<unsigned long long>(queued));
        reply += "note: " + address + " is in no cluster now; it is unregistered once its " + std::to_string(queued) +
            " queued lines are delivered\n";
        finish_drains();
    }
    return reply;
}

// A destination in no cluster leaves once every worker routes by the table without it and its queue is empty.
void Supervisor::finish_drains() {
    for (uint32_t slot = 0; slot < shm::kDestinationSlots; ++slot) {
        Destination& d = destinations_[slot];
        if (!d.in_use || !d.draining || d.removing) continue;
        bool workers_moved_on = true;
        for (const Child& w : listeners_)
            if (w.pid &&
                control_->workers[w.index].seen_generation.load(std::memory_order_acquire) < d.draining_generation)
                workers_moved_on = false;
        if (!workers_moved_on || (d.queue && d.queue->queued_lines() != 0)) continue;
        LOG_NOTICE("destination %s: in no cluster and its queue is delivered", d.text.c_str());
        begin_removal(slot);
    }
}

std::string Supervisor::cluster_getdest_fields() {
    std::vector<admin::ClusterListing> clusters;
    for (size_t c = 0; c < rules_table_->cluster_count(); ++c)
        clusters.push_back(
            {rules_table_->cluster_name(c), rules_table_->cluster_type(c), rules_table_->cluster_member_texts(c)});
    std::vector<std::string> draining;
    for (const Destination& d : destinations_)
        if (d.in_use && d.draining && !d.removing) draining.push_back(d.text);
    return admin::cluster_fields_json(clusters, draining);
}

bool Supervisor::queue_moves(const Destination& d) const {
    if (!d.ring_member()) return false;
    if (config_.hash_route()) return true;
    if (!rules_table_) return false;
    const long slot = rules_table_->find_slot(d.text);
    return slot >= 0 && rules_table_->slot_fails_over(size_t(slot));
}

// SIGHUP with the same --rules path: the routing table stays the one built at start (every child routes by
// its copy of it), so a changed file is checked and named as needing a restart, never half applied. Returns
// whether it changed; an error in it is logged, as a start with it would fail.
bool Supervisor::rules_file_changed() {
    if (config_.rules.empty()) return false;
    std::string error, sources;
    std::vector<std::string> warnings;
    if (!route::compile_rules_file(config_.rules, error, &warnings, &sources)) {
        LOG_ERROR(
            "supervisor: reload: --rules %s has an error: %s; still routing by the rules read at start, and a "
            "restart would refuse to start",
            config_.rules.c_str(), error.c_str());
        return true;
    }
    if (sources == rules_sources_) return false;
    LOG_WARN(
        "supervisor: reload: --rules %s changed on disk; needs a restart to take effect (still routing by the "
        "rules read at start; queues and the aggregator's state are kept across the restart)",
        config_.rules.c_str());
    return true;
}

}  // namespace polymur
