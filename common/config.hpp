// Everything the operator can set, from the command line, POLYMUR_* environment variables and a
// config file (in that order of precedence).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "route/hash_ring.hpp"

namespace polymur {

// The options with a fixed set of values are parsed once, here, into these; each has its name
// function (the option's own spelling, for logs and replies) and its parser (false: not a name).
enum class Distribution { broadcast, hash_route };  // --distribution broadcast | hash-route
enum class Failover { reroute, hold };              // --failover (hash-route)
enum class Mode { relay, proxy, gateway };          // --mode, or from the program's name

const char* distribution_name(Distribution distribution);
bool parse_distribution(std::string_view text, Distribution& out);
const char* failover_name(Failover failover);
bool parse_failover(std::string_view text, Failover& out);
const char* mode_name(Mode mode);
bool parse_mode(std::string_view text, Mode& out);

struct Config {
    std::string listen_addr = "0.0.0.0:2003";
    std::string pickle_listen_addr;   // carbon's pickle protocol (carbon uses 2004); empty: off
    std::string udp_listen_addr;      // plaintext lines in UDP datagrams; empty: off
    uint32_t udp_rcvbuf = 16u << 20;  // receive buffer of the UDP socket in bytes
    std::string tls_listen_addr;      // plaintext lines over TLS; empty: off
    std::string tls_cert, tls_key;    // its server certificate chain and key
    std::string tls_client_ca;        // set: clients must present a certificate signed by it
    std::string api_addr = "localhost:2030";
    std::string admin_socket;               // empty: <state-dir>/polymur.sock
    std::vector<std::string> admin_users;   // besides root and the service's own user: may putdest/deldest
    std::vector<std::string> admin_groups;  // members may putdest/deldest
    std::string admin_token_file;           // a secret that allows changes from anywhere (token=<secret>)
    uint32_t admin_max_connections = 64;    // concurrent admin connections; the oldest is dropped beyond
    uint32_t max_destinations = 32;         // registered destinations, configured and added with putdest
    std::string metrics_addr;               // HTTP /metrics and /health for Prometheus and probes; empty: off
    std::vector<std::string> destinations;
    Distribution distribution = Distribution::broadcast;
    route::HashType hash_type = route::HashType::carbon_ch;
    route::HashCompat hash_compat = route::HashCompat::graphite;  // or carbon-c-relay
    bool tag_normalize = false;                                   // carbon's TAG_RELAY_NORMALIZED
    std::string rules;  // carbon-c-relay rules file (docs/ROUTING.md); empty: --distribution/--destinations
    uint32_t replication_factor = 1;
    bool diverse_replicas = true;
    Failover failover = Failover::reroute;
    uint32_t failover_after = 3;          // consecutive failed reconnects
    uint64_t queue_cap = 4000000;         // lines per destination
    uint64_t queue_bytes = 256ull << 20;  // bytes per destination (queue file size)
    bool console_out = false;
    uint32_t workers = 0;  // 0: one per CPU
    std::string state_dir = "/var/lib/polymur";
    uint32_t reconnect_interval_s = 10;
    uint32_t connect_timeout_ms = 3000;
    uint32_t max_line_length = 16384;
    uint32_t idle_timeout_s = 600;
    uint32_t linger_ms = 5;  // at moderate rates, the period listeners and outputs let lines gather for (0: never)
    uint32_t stats_interval_s = 5;
    uint32_t drain_timeout_s = 5;
    uint32_t sync_interval_s = 0;           // 0: no fdatasync of queue data (the kernel writes back on its own)
    uint32_t stall_timeout_s = 30;          // a child without heartbeat or progress this long is restarted
    uint32_t backoff_reset_s = 30;          // a child that lived this long restarts after the first delay again
    uint32_t self_metrics_interval_s = 60;  // 0: off
    std::string self_metrics_prefix;        // empty: carbon.relays.<short hostname>
    bool check_config = false;
    std::string config_file;

    // HTTPS transport between sites (docs/HTTPS.md).
    Mode mode = Mode::relay;                   // from argv[0] or --mode
    std::string https_listen_addr;             // HTTPS ingest listener (gateway); empty: off
    std::string http_listen_addr;              // plain-HTTP ingest behind a TLS-terminating balancer; empty: off
    std::string cert, key;                     // the gateway's server certificate
    std::string ca_cert;                       // CA that signs client certificates (gateway) / the gateway (proxy)
    std::string crl;                           // revoked client certificates (gateway)
    bool key_prefix = false;                   // prefix metric names with the client certificate's CN
    std::vector<std::string> trusted_proxies;  // CIDRs allowed to set the namespace header (plain HTTP)
    std::string namespace_header = "X-Polymur-Namespace";
    std::string namespace_extra_chars;             // allowed in a namespace besides letters, digits, '_' and '-'
    uint64_t max_bodies_in_flight = 128ull << 20;  // request body bytes being received at once, per process
    uint64_t max_body_bytes = 64ull << 20;         // decompressed request body limit
    uint32_t request_timeout_s = 30;               // from the first byte of a request to its last
    uint32_t handshake_timeout_s = 10;             // from accept to the end of the TLS handshake
    std::string gateway;                           // proxy: https://host:port of the gateway
    std::string client_cert, client_key;           // proxy: this site's certificate
    std::string destination_ca;  // tls:// destinations: CA file to verify them (empty: the system's store)
    std::string destination_cert, destination_key;  // tls:// destinations: our client certificate (optional)
    uint64_t batch_bytes = 1ull << 20;              // HTTPS output: uncompressed bytes per POST
    bool plaintext_listener = true;                 // the gateway has none unless --listen-plaintext is given

    bool hash_route() const { return distribution == Distribution::hash_route; }
};

enum class ParseOutcome { run, exit_ok, exit_error };

// Parses argv (with one or two dashes), the environment and the config file into `config`.
// Prints --help / errors itself. `environment` is envp-style (nullptr-terminated).
// The mode comes from argv[0]'s basename (polymur-proxy, polymur-gateway) unless --mode is given.
ParseOutcome parse_config(int argc, const char* const* argv, const char* const* environment, Config& config);

// Checks values that parse but make no sense together; returns an empty string when fine.
std::string validate_config(const Config& config);

// From now on parse_config's messages are log lines (the running supervisor, on reload).
void send_config_messages_to_log();

// The default for --workers: one per CPU, at least one.
uint32_t default_worker_count();

}  // namespace polymur
