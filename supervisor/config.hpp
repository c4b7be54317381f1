// Everything the operator can set, from the command line, POLYMUR_* environment variables and a
// config file (in that order of precedence).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace polymur {

struct Config {
    std::string listen_addr = "0.0.0.0:2003";
    std::string api_addr = "localhost:2030";
    std::string admin_socket;  // empty: <state-dir>/polymur.sock
    std::vector<std::string> destinations;
    std::string distribution = "broadcast";  // or "hash-route"
    std::string hash_type = "carbon_ch";
    uint32_t replication_factor = 1;
    bool diverse_replicas = true;
    std::string failover = "reroute";  // or "hold"
    uint32_t failover_after = 3;       // consecutive failed reconnects
    uint64_t queue_cap = 4000000;             // lines per destination
    uint64_t queue_bytes = 256ull << 20;      // bytes per destination (queue file size)
    bool console_out = false;
    uint32_t workers = 0;                     // 0: one per CPU
    std::string state_dir = "/var/lib/polymur";
    uint32_t reconnect_interval_s = 10;
    uint32_t connect_timeout_ms = 3000;
    uint32_t max_line_length = 16384;
    uint32_t idle_timeout_s = 600;
    uint32_t stats_interval_s = 5;
    uint32_t drain_timeout_s = 5;
    uint32_t stall_timeout_s = 30;  // a child without heartbeat or progress this long is restarted
    std::string config_file;

    bool hash_route() const { return distribution == "hash-route"; }
};

enum class ParseOutcome { run, exit_ok, exit_error };

// Parses argv (with one or two dashes), the environment and the config file into `config`.
// Prints --help / errors itself. `environment` is envp-style (nullptr-terminated).
ParseOutcome parse_config(int argc, const char* const* argv, const char* const* environment, Config& config);

// Checks values that parse but make no sense together; returns an empty string when fine.
std::string validate_config(const Config& config);

// The default for --workers: one per CPU, at least one.
uint32_t default_worker_count();

}  // namespace polymur
