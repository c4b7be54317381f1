// SIGHUP: the configuration read again, what can change applied, the rest reported as needing a
// restart. Part of the Supervisor class (supervisor.hpp), in its own file by job.
#include "supervisor/supervisor.hpp"

#include <event2/event.h>

#include <algorithm>

#include "common/log.hpp"
#include "common/validate.hpp"
#include "supervisor/reload_policy.hpp"

namespace polymur {

// SIGHUP: the configuration is read again exactly as at start (command line, environment, file).
// Destinations are applied as putdest/deldest would; a configuration with an error is refused and
// the running one kept. Other options take effect at the next restart, and the log says which.
void Supervisor::reload() {
    if (state_ != State::running) return;
    systemd_.notify("RELOADING=1\nSTATUS=reloading configuration");
    LOG_NOTICE("supervisor: SIGHUP received; reading the configuration again");
    std::vector<const char*> argv;
    for (const std::string& a : args_) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    Config next;
    if (parse_config(static_cast<int>(args_.size()), argv.data(), environ, next) != ParseOutcome::run) {
        LOG_ERROR(
            "supervisor: reload refused: the configuration has an error (above); keeping the running configuration");
        systemd_.notify("READY=1\nSTATUS=reload refused; running the previous configuration");
        return;
    }
    auto listed = [](const std::vector<std::string>& list, const std::string& text) {
        return std::find(list.begin(), list.end(), text) != list.end();
    };
    size_t added = 0, removed = 0;
    for (const std::string& text : config_.destinations) {
        if (listed(next.destinations, text)) continue;
        std::string reply = deldest(text);
        LOG_NOTICE("supervisor: reload: %s", reply.substr(0, reply.size() - 1).c_str());
        ++removed;
    }
    for (const std::string& text : next.destinations) {
        if (listed(config_.destinations, text)) continue;
        std::string error;
        if (add_destination(text, false, error)) {
            ++added;
        } else {
            LOG_ERROR("supervisor: reload: %s", error.c_str());
        }
    }
    config_.destinations = next.destinations;  // applied above, as putdest/deldest
    // The journal is relative to the configured destinations, which just changed.
    std::string error;
    if (!save_runtime_destinations(error))
        LOG_ERROR("supervisor: reload: %s; the destinations changed now may differ after a restart", error.c_str());
    // Every other option: applied now, or named as needing a restart (reload_policy.cpp).
    // A changed --rules path is named by the policy below; the same path is read again here.
    const bool same_rules_path = next.rules == config_.rules;
    ReloadChanges changes = apply_reloadable(config_, next);
    for (const std::string& name : changes.applied)
        LOG_NOTICE("supervisor: reload: --%s changed; applied", name.c_str());
    for (const std::string& name : changes.need_restart)
        LOG_WARN("supervisor: reload: --%s changed; needs a restart to take effect (still running with the old value)",
                 name.c_str());
    const size_t rules_changed = same_rules_path && rules_file_changed() ? 1 : 0;  // logs what it found
    arm_periodic_events();
    publish_live_settings();
    LOG_NOTICE(
        "supervisor: reload done: %zu destinations added, %zu removed; %zu other options applied, %zu need a restart",
        added, removed, changes.applied.size(), changes.need_restart.size() + rules_changed);
    systemd_.notify("READY=1\nSTATUS=running (configuration reloaded)");
}

// The options children read from the control segment, so a reload reaches them without a restart.
void Supervisor::publish_live_settings() {
    control_->header.idle_timeout_s.store(config_.idle_timeout_s, std::memory_order_relaxed);
    control_->header.reconnect_interval_s.store(config_.reconnect_interval_s, std::memory_order_relaxed);
    control_->header.connect_timeout_ms.store(config_.connect_timeout_ms, std::memory_order_relaxed);
    control_->header.drain_timeout_s.store(config_.drain_timeout_s, std::memory_order_relaxed);
}

// (Re)arms the timers whose intervals are options, at start and after a reload.
void Supervisor::arm_periodic_events() {
    struct timeval rates_interval = {static_cast<time_t>(config_.stats_interval_s), 0};
    event_add(rates_event_, &rates_interval);
    event_del(self_metrics_event_);
    if (config_.self_metrics_interval_s) {
        struct timeval interval = {static_cast<time_t>(config_.self_metrics_interval_s), 0};
        event_add(self_metrics_event_, &interval);
    }
}

}  // namespace polymur
