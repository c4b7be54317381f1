// What SIGHUP does with each option: one row per option of --help. `applied` options take effect
// on reload; `restart` options are named in the log as needing a restart; `fixed` rows are not
// settings a reload could change (the command line and environment of a running process are fixed).
// docs/OPERATIONS.md prints this table; a unit test keeps the two and --help in step.
#pragma once

#include <string>
#include <vector>

#include "common/config.hpp"

namespace polymur {

enum class OnReload { applied, restart, fixed };

struct ReloadRule {
    const char* option;
    OnReload on_reload;
    bool (*differs)(const Config& running, const Config& next);  // nullptr for `fixed`
    void (*apply)(Config& running, const Config& next);          // copies the value; `applied` only
};

const std::vector<ReloadRule>& reload_rules();

const char* on_reload_name(OnReload on_reload);

// Compares `next` with `running`, copies what a reload applies into `running`, and returns the
// option names that changed, split by what happened to them.
struct ReloadChanges {
    std::vector<std::string> applied, need_restart;
};
ReloadChanges apply_reloadable(Config& running, const Config& next);

}  // namespace polymur
