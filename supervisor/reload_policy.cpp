#include "supervisor/reload_policy.hpp"

namespace polymur {

// One row: the option, what a reload does, and the Config field(s) it sets.
#define POLYMUR_RELOAD(option, how, field)                                                          \
    ReloadRule {                                                                                    \
        option, OnReload::how, [](const Config& a, const Config& b) { return a.field != b.field; }, \
            [](Config& to, const Config& from) { to.field = from.field; }                           \
    }
#define POLYMUR_FIXED(option) \
    ReloadRule { option, OnReload::fixed, nullptr, nullptr }

const std::vector<ReloadRule>& reload_rules() {
    // clang-format off
    static const std::vector<ReloadRule> rules = {
        POLYMUR_FIXED("help"),
        POLYMUR_FIXED("version"),
        POLYMUR_FIXED("config"),  // the path comes from the command line; the file itself is read again
        POLYMUR_RELOAD("listen-addr", restart, listen_addr),
        POLYMUR_RELOAD("pickle-listen-addr", restart, pickle_listen_addr),
        POLYMUR_RELOAD("udp-listen-addr", restart, udp_listen_addr),
        POLYMUR_RELOAD("udp-rcvbuf", restart, udp_rcvbuf),
        POLYMUR_RELOAD("tls-listen-addr", restart, tls_listen_addr),
        POLYMUR_RELOAD("tls-cert", restart, tls_cert),
        POLYMUR_RELOAD("tls-key", restart, tls_key),
        POLYMUR_RELOAD("tls-client-ca", restart, tls_client_ca),
        POLYMUR_RELOAD("api-addr", restart, api_addr),
        POLYMUR_RELOAD("admin-socket", restart, admin_socket),
        POLYMUR_RELOAD("admin-users", restart, admin_users),
        POLYMUR_RELOAD("admin-groups", restart, admin_groups),
        POLYMUR_RELOAD("admin-token-file", restart, admin_token_file),
        POLYMUR_RELOAD("admin-max-connections", restart, admin_max_connections),
        POLYMUR_RELOAD("max-destinations", applied, max_destinations),
        POLYMUR_RELOAD("metrics-addr", restart, metrics_addr),
        // Applied by the supervisor as putdest/deldest (supervisor.cpp), not by copying.
        ReloadRule {"destinations", OnReload::applied, [](const Config& a, const Config& b) { return a.destinations != b.destinations; },
                    [](Config& to, const Config& from) { to.destinations = from.destinations; }},
        POLYMUR_RELOAD("distribution", restart, distribution),
        POLYMUR_RELOAD("hash-type", restart, hash_type),
        POLYMUR_RELOAD("hash-compat", restart, hash_compat),
        POLYMUR_RELOAD("tag-normalize", restart, tag_normalize),
        POLYMUR_RELOAD("rules", restart, rules),
        POLYMUR_RELOAD("replication-factor", restart, replication_factor),
        POLYMUR_RELOAD("diverse-replicas", restart, diverse_replicas),
        POLYMUR_RELOAD("failover", applied, failover),
        POLYMUR_RELOAD("failover-after", applied, failover_after),
        POLYMUR_RELOAD("queue-cap", restart, queue_cap),
        POLYMUR_RELOAD("queue-bytes", restart, queue_bytes),
        POLYMUR_RELOAD("console-out", restart, console_out),
        POLYMUR_RELOAD("workers", restart, workers),
        POLYMUR_RELOAD("state-dir", restart, state_dir),
        POLYMUR_RELOAD("reconnect-interval", applied, reconnect_interval_s),
        POLYMUR_RELOAD("connect-timeout-ms", applied, connect_timeout_ms),
        POLYMUR_RELOAD("max-line-length", restart, max_line_length),
        POLYMUR_RELOAD("idle-timeout", applied, idle_timeout_s),
        POLYMUR_RELOAD("linger-ms", restart, linger_ms),
        POLYMUR_RELOAD("stats-interval", applied, stats_interval_s),
        POLYMUR_RELOAD("sync-interval", restart, sync_interval_s),
        POLYMUR_RELOAD("drain-timeout", applied, drain_timeout_s),
        POLYMUR_RELOAD("stall-timeout", applied, stall_timeout_s),
        POLYMUR_RELOAD("backoff-reset", applied, backoff_reset_s),
        POLYMUR_RELOAD("mode", restart, mode),
        POLYMUR_RELOAD("https-listen-addr", restart, https_listen_addr),
        POLYMUR_RELOAD("listen-port", restart, https_listen_addr),
        POLYMUR_RELOAD("http-listen-addr", restart, http_listen_addr),
        POLYMUR_RELOAD("listen-plaintext", restart, plaintext_listener),
        POLYMUR_RELOAD("cert", restart, cert),
        POLYMUR_RELOAD("key", restart, key),
        POLYMUR_RELOAD("ca-cert", restart, ca_cert),
        POLYMUR_RELOAD("crl", restart, crl),
        POLYMUR_RELOAD("key-prefix", restart, key_prefix),
        POLYMUR_RELOAD("trusted-proxies", restart, trusted_proxies),
        POLYMUR_RELOAD("namespace-header", restart, namespace_header),
        POLYMUR_RELOAD("namespace-extra-chars", restart, namespace_extra_chars),
        POLYMUR_RELOAD("max-bodies-in-flight", restart, max_bodies_in_flight),
        POLYMUR_RELOAD("handshake-timeout", restart, handshake_timeout_s),
        POLYMUR_RELOAD("max-body-bytes", restart, max_body_bytes),
        POLYMUR_RELOAD("request-timeout", restart, request_timeout_s),
        POLYMUR_RELOAD("gateway", restart, gateway),
        POLYMUR_RELOAD("client-cert", restart, client_cert),
        POLYMUR_RELOAD("client-key", restart, client_key),
        POLYMUR_RELOAD("batch-bytes", restart, batch_bytes),
        POLYMUR_RELOAD("destination-ca", restart, destination_ca),
        POLYMUR_RELOAD("destination-cert", restart, destination_cert),
        POLYMUR_RELOAD("destination-key", restart, destination_key),
        POLYMUR_RELOAD("self-metrics-interval", applied, self_metrics_interval_s),
        POLYMUR_RELOAD("self-metrics-prefix", applied, self_metrics_prefix),
        POLYMUR_FIXED("check-config"),
        POLYMUR_FIXED("stat-addr"),  // ignored
        POLYMUR_RELOAD("metrics-flush", applied, self_metrics_interval_s),
    };
    // clang-format on
    return rules;
}

#undef POLYMUR_RELOAD
#undef POLYMUR_FIXED

const char* on_reload_name(OnReload on_reload) {
    switch (on_reload) {
        case OnReload::applied: return "applied";
        case OnReload::restart: return "restart";
        case OnReload::fixed: return "-";
    }
    return "?";
}

ReloadChanges apply_reloadable(Config& running, const Config& next) {
    ReloadChanges changes;
    const Config before = running;
    for (const ReloadRule& rule : reload_rules()) {
        if (rule.on_reload == OnReload::fixed || !rule.differs(before, next)) continue;
        // Two options setting one field (metrics-flush, self-metrics-interval) are reported once.
        auto& list = rule.on_reload == OnReload::applied ? changes.applied : changes.need_restart;
        bool same_field_reported = false;
        for (const ReloadRule& other : reload_rules()) {
            if (&other == &rule) break;
            if (other.on_reload == rule.on_reload && other.differs && other.differs(before, next)) {
                Config probe = before;
                other.apply(probe, next);
                same_field_reported |= !rule.differs(probe, next);
            }
        }
        if (same_field_reported) continue;
        if (rule.on_reload == OnReload::applied) rule.apply(running, next);
        list.push_back(rule.option);
    }
    return changes;
}

}  // namespace polymur
