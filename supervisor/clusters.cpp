// The supervisor's side of --rules: the routing table is built once here and inherited by every child
// (Heritage::rules); each destination it names is registered like a --destinations entry (its own queue and
// output process), once however many clusters list it.
#include <cstring>

#include "common/log.hpp"
#include "supervisor/supervisor.hpp"

namespace polymur {

bool Supervisor::setup_rules() {
    std::string error;
    std::vector<std::string> warnings;
    rules_table_ = route::compile_rules_file(config_.rules, error, &warnings);
    if (!rules_table_) {
        LOG_ERROR("--rules: %s", error.c_str());
        return false;
    }
    for (const std::string& warning : warnings) LOG_WARN("--rules: %s", warning.c_str());
    for (size_t slot = 0; slot < rules_table_->slot_count(); ++slot) {
        if (!add_destination(rules_table_->slot_text(slot), false, error)) {
            LOG_ERROR("--rules %s: %s", config_.rules.c_str(), error.c_str());
            return false;
        }
    }
    LOG_NOTICE("--rules %s: %zu rules, %zu clusters, %zu destinations", config_.rules.c_str(),
               rules_table_->rule_count(), rules_table_->cluster_count(), rules_table_->slot_count());
    return true;
}

bool Supervisor::queue_moves(const Destination& d) const {
    if (!d.ring_member()) return false;
    if (config_.hash_route()) return true;
    if (!rules_table_) return false;
    const long slot = rules_table_->find_slot(d.text);
    return slot >= 0 && rules_table_->slot_fails_over(size_t(slot));
}

}  // namespace polymur
