#include "common/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include <boost/program_options.hpp>

#include "common/cidr.hpp"
#include "common/destination_spec.hpp"
#include "common/enum_names.hpp"
#include "common/log.hpp"
#include "common/man_options.hpp"
#include "common/net.hpp"
#include "common/option_error.hpp"
#include "common/self_metrics.hpp"
#include "common/validate.hpp"
#include "protocol/line.hpp"
#include "route/hash_ring.hpp"
#include "route/routing_table.hpp"
#include "shm/control.hpp"
#include "shm/queue.hpp"

namespace polymur {
namespace po = boost::program_options;

// Unsigned option values: Boost's lexical_cast accepts "-1" and wraps it; from_chars does not.
template <typename T>
struct Unsigned {
    T value;
};

template <typename T>
void validate(boost::any& out, const std::vector<std::string>& values, Unsigned<T>*, int) {
    po::validators::check_first_occurrence(out);
    const std::string& text = po::validators::get_single_string(values);
    T value {};
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) throw po::invalid_option_value(text);
    out = boost::any(Unsigned<T> {value});
}

namespace {

// An unsigned option that defaults to, and is stored into, *target.
template <typename T>
po::typed_value<Unsigned<T>>* unsigned_value(T* target) {
    return po::value<Unsigned<T>>()
        ->default_value(Unsigned<T> {*target}, std::to_string(*target))
        ->notifier([target](const Unsigned<T>& v) { *target = v.value; });
}

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) {
        size_t b = item.find_first_not_of(" \t"), e = item.find_last_not_of(" \t");
        if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
    }
    return out;
}

// POLYMUR_LISTEN_ADDR -> listen-addr. Returns "" for variables without the prefix; a POLYMUR_*
// variable that names no option is returned as is, for the caller to report.
std::string environment_name(const std::string& variable) {
    const std::string prefix = "POLYMUR_";
    if (variable.compare(0, prefix.size(), prefix) != 0) return "";
    std::string name = variable.substr(prefix.size());
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return c == '_' ? '-' : std::tolower(c); });
    return name;
}

// Stores one option from the environment or the file; returns Boost's complaint about its value, or "".
std::string store_one(const po::options_description& options, po::variables_map& values, const std::string& name,
                      const std::string& value, const std::string& token) {
    po::parsed_options one(&options);
    one.options.emplace_back(name, std::vector<std::string> {value});
    one.options.back().original_tokens = {token};
    try {
        po::variables_map scratch;
        po::store(one, scratch);  // checks the value without touching the real map
        po::store(one, values);
    } catch (po::error& e) {
        return option_error_text(e);
    }
    return "";
}

// Reads `name = value` lines ('#' starts a comment) so that every error names the file and line.
// Values already set on the command line or in the environment win.
bool store_config_file(const std::string& path, const po::options_description& options, po::variables_map& values,
                       std::string& error) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
        error = "config file " + path + ": is a directory";
        return false;
    }
    std::ifstream in(path);
    if (!in) {
        error = "config file " + path + ": cannot open: " + std::strerror(errno);
        return false;
    }
    std::map<std::string, int> first_line;
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
        const std::string where = path + ":" + std::to_string(number) + ": ";
        size_t hash = line.find('#');
        if (hash != std::string::npos) line.resize(hash);
        size_t b = line.find_first_not_of(" \t\r"), e = line.find_last_not_of(" \t\r");
        if (b == std::string::npos) continue;
        line = line.substr(b, e - b + 1);
        size_t eq = line.find('=');
        if (eq == std::string::npos) {
            error = where + "expected name = value";
            return false;
        }
        auto trim = [](const std::string& text) {
            size_t first = text.find_first_not_of(" \t"), last = text.find_last_not_of(" \t");
            return first == std::string::npos ? std::string() : text.substr(first, last - first + 1);
        };
        std::string name = trim(line.substr(0, eq));
        std::string value = trim(line.substr(eq + 1));
        if (name.rfind("--", 0) == 0) name = name.substr(2);
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
            error = where + "'" + name + "': values are written without quotes (" + name + " = " +
                value.substr(1, value.size() - 2) + ")";
            return false;
        }
        if (!options.find_nothrow(name, false) || name == "config" || name == "help" || name == "version") {
            error = where + "unknown option '" + name + "'";
            return false;
        }
        if (first_line.count(name)) {
            error = where + "'" + name + "' is set twice (first on line " + std::to_string(first_line[name]) + ")";
            return false;
        }
        first_line[name] = number;
        std::string problem = store_one(options, values, name, value, line);
        if (!problem.empty()) {
            error = where + problem;
            return false;
        }
    }
    return true;
}

bool g_messages_to_log = false;

// An error before the relay runs is a command's message (`polymur: ...` on stderr); once it runs (a
// reload reads the configuration again) it is a log line. A warning is always a log line: the relay
// (or the check) goes on after it.
void report(log::Level level, const std::string& text) {
    if (g_messages_to_log || level != log::Level::error) log::write(level, "%s", text.c_str());
    else std::cerr << "polymur: " << text << '\n';
}

// Variables the repository's own test and benchmark tools set; they are not options.
constexpr const char* kToolVariables[] = {"POLYMUR_BIN", "POLYMUR_BENCH_DIR", "POLYMUR_IN_NETNS",
                                          "POLYMUR_TEST_INSTALL"};

// POLYMUR_* variables, each stored on its own so an error names the variable. A variable that names
// no option is an error, as an unknown name in the file is: a typo would otherwise drop a setting.
std::string store_environment(const char* const* environment, const po::options_description& options,
                              po::variables_map& values) {
    for (const char* const* entry = environment; entry && *entry; ++entry) {
        std::string text = *entry;
        size_t eq = text.find('=');
        if (eq == std::string::npos) continue;
        const std::string variable = text.substr(0, eq);
        std::string name = environment_name(variable);
        if (name.empty()) continue;
        if (std::find(std::begin(kToolVariables), std::end(kToolVariables), variable) != std::end(kToolVariables))
            continue;
        if (name == "help" || name == "version" || !options.find_nothrow(name, false))
            return "environment variable " + variable + " names no option (POLYMUR_<OPTION>, e.g. POLYMUR_LISTEN_ADDR)";
        std::string problem = store_one(options, values, name, text.substr(eq + 1), text);
        if (!problem.empty()) return "environment variable " + variable + ": " + problem;
    }
    return "";
}

// A repeated option on the command line: the last one wins, as in most daemons, so a wrapper
// (./dev.sh run) can set a default and the operator override it. A value that is itself an option
// (`--listen-addr --check-config`) means the value was forgotten.
std::string last_occurrence_wins(po::parsed_options& parsed, const po::options_description& options) {
    for (const po::option& o : parsed.options) {
        if (o.original_tokens.size() < 2 || o.value.size() != 1) continue;
        const std::string& value = o.value.front();
        if (value.size() < 2 || value[0] != '-' || value == o.original_tokens.front()) continue;
        std::string name = value.substr(value.find_first_not_of('-'));
        name = name.substr(0, name.find('='));
        if (options.find_nothrow(name, false))
            return "--" + o.string_key + " needs a value; the next word, " + value + ", is an option (write --" +
                o.string_key + "=VALUE)";
    }
    std::vector<po::option> kept;
    for (auto it = parsed.options.rbegin(); it != parsed.options.rend(); ++it) {
        bool later = std::any_of(kept.begin(), kept.end(), [&](const po::option& k) {
            return !it->unregistered && k.string_key == it->string_key;
        });
        if (!later) kept.push_back(*it);
    }
    parsed.options.assign(kept.rbegin(), kept.rend());
    return "";
}

}  // namespace

void send_config_messages_to_log() { g_messages_to_log = true; }

const char* distribution_name(Distribution distribution) {
    switch (distribution) {
        case Distribution::broadcast: return "broadcast";
        case Distribution::hash_route: return "hash-route";
    }
    return "?";
}

bool parse_distribution(std::string_view text, Distribution& out) {
    constexpr Distribution kAll[] = {Distribution::broadcast, Distribution::hash_route};
    return parse_by_name(text, kAll, distribution_name, out);
}

const char* failover_name(Failover failover) {
    switch (failover) {
        case Failover::reroute: return "reroute";
        case Failover::hold: return "hold";
    }
    return "?";
}

bool parse_failover(std::string_view text, Failover& out) {
    constexpr Failover kAll[] = {Failover::reroute, Failover::hold};
    return parse_by_name(text, kAll, failover_name, out);
}

const char* mode_name(Mode mode) {
    switch (mode) {
        case Mode::relay: return "relay";
        case Mode::proxy: return "proxy";
        case Mode::gateway: return "gateway";
    }
    return "?";
}

bool parse_mode(std::string_view text, Mode& out) {
    constexpr Mode kAll[] = {Mode::relay, Mode::proxy, Mode::gateway};
    return parse_by_name(text, kAll, mode_name, out);
}

uint32_t default_worker_count() {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return static_cast<uint32_t>(std::clamp<long>(cpus, 1, 16));
}

ParseOutcome parse_config(int argc, const char* const* argv, const char* const* environment, Config& config) {
    Config defaults;
    std::string destinations;
    // The options with a fixed set of names, as written; parsed into Config's enums after the merge below.
    std::string distribution, hash_type, hash_compat, failover, mode;
    po::options_description options("polymur options (one or two dashes; also POLYMUR_<NAME> and --config)");
    // clang-format off
    options.add_options()
        ("help,h", "show this help and exit")
        ("version", "print the version and exit")
        ("config", po::value(&config.config_file), "config file of `name = value` lines (every option below)")
        ("listen-addr", po::value(&config.listen_addr)->default_value(defaults.listen_addr), "plaintext metrics listen address")
        ("pickle-listen-addr", po::value(&config.pickle_listen_addr), "carbon pickle protocol listener host:port (carbon's port is 2004; off by default)")
        ("udp-listen-addr", po::value(&config.udp_listen_addr), "plaintext lines over UDP, host:port (off by default)")
        ("udp-rcvbuf", unsigned_value(&config.udp_rcvbuf), "receive buffer of the UDP socket in bytes (what overflows it is dropped by the kernel and counted)")
        ("tls-listen-addr", po::value(&config.tls_listen_addr), "plaintext metrics over TLS, host:port (off by default; needs --tls-cert and --tls-key)")
        ("tls-cert", po::value(&config.tls_cert), "server certificate chain (PEM) of the TLS listener")
        ("tls-key", po::value(&config.tls_key), "server private key (PEM) of the TLS listener")
        ("tls-client-ca", po::value(&config.tls_client_ca), "CA certificate(s) (PEM): the TLS listener then requires a client certificate they sign (mutual TLS)")
        ("api-addr", po::value(&config.api_addr)->default_value(defaults.api_addr), "admin protocol TCP address (keep it on loopback)")
        ("admin-socket", po::value(&config.admin_socket), "admin protocol unix socket (default <state-dir>/polymur.sock)")
        ("admin-users", po::value<std::string>()->default_value(""), "comma-separated users (names or uids) who may putdest/deldest besides root and the user polymur runs as")
        ("admin-groups", po::value<std::string>()->default_value(""), "comma-separated groups whose members may putdest/deldest")
        ("admin-token-file", po::value(&config.admin_token_file), "file (mode 0600) holding a secret; putdest/deldest with token=<secret> are allowed from any client")
        ("admin-max-connections", unsigned_value(&config.admin_max_connections), "concurrent admin connections; beyond it the oldest is dropped")
        ("max-destinations", unsigned_value(&config.max_destinations), "most destinations registered at once (configured plus putdest)")
        ("metrics-addr", po::value(&config.metrics_addr), "HTTP address serving /metrics (Prometheus) and /health (off unless set; keep it on loopback or a monitoring network)")
        ("destinations", po::value(&destinations)->default_value(""), "comma-separated host:port[:instance] destinations")
        ("distribution", po::value(&distribution)->default_value(distribution_name(defaults.distribution)), "broadcast (mirror to every destination) or hash-route (Graphite's consistent hashing)")
        ("hash-type", po::value(&hash_type)->default_value(route::hash_type_name(defaults.hash_type)), "hash-route ring: carbon_ch, fnv1a_ch or jump_fnv1a_ch")
        ("hash-compat", po::value(&hash_compat)->default_value(route::hash_compat_name(defaults.hash_compat)), "hash-route: whose placement carbon_ch and fnv1a_ch follow: graphite (carbon, graphite-web) or carbon-c-relay")
        ("tag-normalize", po::value(&config.tag_normalize)->default_value(false)->implicit_value(true), "normalize tagged names (sorted tags) before routing and forwarding, as carbon's TAG_RELAY_NORMALIZED")
        ("rules", po::value(&config.rules), "carbon-c-relay rules file: clusters, match, rewrite (docs/ROUTING.md); replaces --distribution and --destinations")
        ("replication-factor", unsigned_value(&config.replication_factor), "hash-route: destinations per metric")
        ("diverse-replicas", po::value(&config.diverse_replicas)->default_value(true)->implicit_value(true), "hash-route: replicas on distinct hosts (carbon's DIVERSE_REPLICAS)")
        ("failover", po::value(&failover)->default_value(failover_name(defaults.failover)), "hash-route: reroute (a failed destination leaves the ring and its queue moves to the others) or hold (keep its queue until it returns)")
        ("failover-after", unsigned_value(&config.failover_after), "hash-route: consecutive failed reconnects before failover")
        ("queue-cap", unsigned_value(&config.queue_cap), "queued metrics per destination before new ones are dropped")
        ("queue-bytes", unsigned_value(&config.queue_bytes), "size of each destination's queue file in bytes")
        ("console-out", po::value(&config.console_out)->default_value(false)->implicit_value(true), "also write every metric to stdout")
        ("workers", unsigned_value(&config.workers), "listener worker processes (0: one per CPU)")
        ("state-dir", po::value(&config.state_dir)->default_value(defaults.state_dir), "directory for queue files and state")
        ("reconnect-interval", unsigned_value(&config.reconnect_interval_s), "seconds between reconnect attempts to a destination")
        ("connect-timeout-ms", unsigned_value(&config.connect_timeout_ms), "milliseconds before a connect attempt fails")
        ("max-line-length", unsigned_value(&config.max_line_length), "longest accepted line in bytes; longer lines are dropped and counted")
        ("idle-timeout", unsigned_value(&config.idle_timeout_s), "seconds before an idle client connection is closed (0: never)")
        ("linger-ms", unsigned_value(&config.linger_ms), "while lines keep coming at a moderate rate, listeners and outputs wake once per this many milliseconds to let lines gather, adding at most about 1.25 times it to a line's latency; full speed and backpressure never linger (0: never; at most 100)")
        ("stats-interval", unsigned_value(&config.stats_interval_s), "seconds between the rate lines in the log")
        ("sync-interval", unsigned_value(&config.sync_interval_s), "seconds between writing queue data back to disk (fdatasync), so a power loss loses at most about that much (0: off, the kernel writes back on its own)")
        ("drain-timeout", unsigned_value(&config.drain_timeout_s), "seconds an output may spend delivering its queue on shutdown")
        ("stall-timeout", unsigned_value(&config.stall_timeout_s), "seconds without a heartbeat (or, for an output, without the destination accepting data) before a child is restarted")
        ("backoff-reset", unsigned_value(&config.backoff_reset_s), "seconds a restarted child must live for its next restart to wait the first delay (100 ms) again instead of double the last")
        ("mode", po::value(&mode), "relay, proxy or gateway (default from the program name: polymur-proxy, polymur-gateway)")
        ("https-listen-addr", po::value(&config.https_listen_addr), "HTTPS ingest listener host:port (POST /ingest, client certificates required)")
        ("listen-port", po::value<std::string>(), "gateway: HTTPS port on --listen-addr (Polymur-gateway style)")
        ("http-listen-addr", po::value(&config.http_listen_addr), "plain-HTTP ingest listener behind a TLS-terminating load balancer (off by default)")
        ("listen-plaintext", po::value<std::string>(), "gateway: also accept plaintext metrics on this host:port")
        ("cert", po::value(&config.cert), "server certificate (PEM) for the HTTPS listener")
        ("key", po::value(&config.key), "server private key (PEM) for the HTTPS listener")
        ("ca-cert", po::value(&config.ca_cert), "CA certificate (PEM): verifies client certificates (gateway) and the gateway (proxy)")
        ("crl", po::value(&config.crl), "certificate revocation list (PEM) checked for client certificates")
        ("key-prefix", po::value(&config.key_prefix)->default_value(false)->implicit_value(true), "prefix every metric with the client certificate's Common Name")
        ("trusted-proxies", po::value<std::string>()->default_value(""), "comma-separated CIDRs whose --namespace-header is trusted on the plain-HTTP listener")
        ("namespace-header", po::value(&config.namespace_header)->default_value(config.namespace_header), "header carrying the namespace on the plain-HTTP listener")
        ("namespace-extra-chars", po::value(&config.namespace_extra_chars), "characters allowed in a namespace besides letters, digits, '_' and '-' (never '.', whitespace or a Graphite glob)")
        ("max-bodies-in-flight", unsigned_value(&config.max_bodies_in_flight), "gateway: request body bytes a listener process receives at once; beyond it 503 with Retry-After")
        ("max-body-bytes", unsigned_value(&config.max_body_bytes), "largest decompressed request body; larger is refused with 413")
        ("request-timeout", unsigned_value(&config.request_timeout_s), "seconds an HTTP(S) client may take to send a request, from its first byte to its last (also the idle limit between requests)")
        ("handshake-timeout", unsigned_value(&config.handshake_timeout_s), "seconds a client of the HTTPS or TLS listener may take for its TLS handshake, from accept")
        ("gateway", po::value(&config.gateway), "proxy: gateway URL (https://host:port); adds it as an HTTPS destination")
        ("client-cert", po::value(&config.client_cert), "proxy: this site's client certificate (PEM)")
        ("client-key", po::value(&config.client_key), "proxy: this site's client key (PEM)")
        ("batch-bytes", unsigned_value(&config.batch_bytes), "HTTPS destinations: uncompressed bytes per POST")
        ("destination-ca", po::value(&config.destination_ca), "tls:// and +tls:// destinations: CA certificates (PEM) that verify them (default: the system's trusted certificates)")
        ("destination-cert", po::value(&config.destination_cert), "tls:// and +tls:// destinations: client certificate (PEM) presented to them (optional)")
        ("destination-key", po::value(&config.destination_key), "tls:// and +tls:// destinations: private key (PEM) of --destination-cert")
        ("self-metrics-interval", unsigned_value(&config.self_metrics_interval_s), "seconds between polymur's own metrics, sent through its own routing (0: off)")
        ("self-metrics-prefix", po::value(&config.self_metrics_prefix), "prefix of polymur's own metrics (default carbon.relays.<short hostname>)")
        ("check-config", po::bool_switch(&config.check_config), "check the configuration (file, environment, command line) and exit")
        ("stat-addr", po::value<std::string>(), "accepted for Polymur compatibility; ignored")
        ("metrics-flush", po::value<std::string>(), "Polymur's name for --self-metrics-interval");
    // clang-format on

    // The build renders the man pages' option lists from this table (man/render.cmake).
    if (write_man_options_if_asked(argc, argv, options, std::cout)) return ParseOutcome::exit_ok;
    po::variables_map values;
    try {
        // Go-style flags: -listen-addr=x is a long option. No abbreviations: Go's flags have none,
        // and a guessed prefix that later becomes ambiguous would break a working command line.
        auto style = (po::command_line_style::default_style & ~po::command_line_style::allow_guessing) |
            po::command_line_style::allow_long_disguise;
        po::positional_options_description no_positional;  // a stray word is an error, not ignored
        po::parsed_options command_line =
            po::command_line_parser(argc, argv).options(options).style(style).positional(no_positional).run();
        std::string error = last_occurrence_wins(command_line, options);
        if (!error.empty()) {
            report(log::Level::error, error);
            return ParseOutcome::exit_error;
        }
        po::store(command_line, values);
        if (values.count("help")) {
            std::cout << "usage: polymur [options]\n       polymur lookup --help\n\n" << options << '\n';
            return ParseOutcome::exit_ok;
        }
        if (values.count("version")) {
            std::cout << "polymur " << POLYMUR_VERSION << '\n';
            return ParseOutcome::exit_ok;
        }
        // Environment before the file: whatever is stored first wins.
        std::string env_error = store_environment(environment, options, values);
        if (!env_error.empty()) {
            report(log::Level::error, env_error);
            return ParseOutcome::exit_error;
        }
        std::string file = values.count("config") ? values["config"].as<std::string>() : "";
        if (!file.empty()) {
            std::string error;
            if (!store_config_file(file, options, values, error)) {
                report(log::Level::error, error);
                return ParseOutcome::exit_error;
            }
        }
        po::notify(values);
    } catch (po::error& e) {
        report(log::Level::error, option_error_text(e) + " (try --help)");
        return ParseOutcome::exit_error;
    }
    config.destinations = split_list(destinations);
    if (!values.count("mode")) {
        std::string program = argc > 0 && argv[0] ? argv[0] : "polymur";
        program = program.substr(program.rfind('/') + 1);
        mode = program == "polymur-proxy" ? "proxy" : program == "polymur-gateway" ? "gateway" : "relay";
    }
    std::string name_error;
    if (!parse_distribution(distribution, config.distribution))
        name_error = "--distribution " + net::printable(distribution) + ": expected broadcast or hash-route";
    else if (!route::parse_hash_type(hash_type, config.hash_type))
        name_error = "--hash-type " + net::printable(hash_type) + ": expected carbon_ch, fnv1a_ch or jump_fnv1a_ch";
    else if (!route::parse_hash_compat(hash_compat, config.hash_compat))
        name_error = "--hash-compat " + net::printable(hash_compat) + ": expected graphite or carbon-c-relay";
    else if (!parse_failover(failover, config.failover))
        name_error = "--failover " + net::printable(failover) + ": expected reroute or hold";
    else if (!parse_mode(mode, config.mode))
        name_error = "--mode " + net::printable(mode) + ": expected relay, proxy or gateway";
    if (!name_error.empty()) {
        report(log::Level::error, name_error);
        return ParseOutcome::exit_error;
    }
    config.trusted_proxies = split_list(values["trusted-proxies"].as<std::string>());
    config.admin_users = split_list(values["admin-users"].as<std::string>());
    config.admin_groups = split_list(values["admin-groups"].as<std::string>());
    if (config.mode == Mode::gateway) {
        // Polymur-gateway: -listen-addr is the bind address, -listen-port the HTTPS port.
        if (values.count("listen-port")) {
            // -listen-addr is a bare address here: 0.0.0.0, ::, [::1], or host:port (port ignored).
            std::string host = config.listen_addr;
            if (host.front() == '[') host = host.substr(0, host.find(']') + 1);
            else if (std::count(host.begin(), host.end(), ':') > 1) host = "[" + host + "]";
            else host = host.substr(0, host.find(':'));
            config.https_listen_addr = host + ":" + values["listen-port"].as<std::string>();
        }
        config.plaintext_listener = values.count("listen-plaintext") != 0;
        if (config.plaintext_listener) config.listen_addr = values["listen-plaintext"].as<std::string>();
    } else if (values.count("listen-port")) {
        report(log::Level::error, "--listen-port is for the gateway (--mode gateway or polymur-gateway)");
        return ParseOutcome::exit_error;
    }
    if (config.mode == Mode::proxy && !config.gateway.empty())
        config.destinations.insert(config.destinations.begin(), config.gateway);
    if (config.workers == 0) config.workers = default_worker_count();
    if (config.admin_socket.empty()) config.admin_socket = config.state_dir + "/polymur.sock";
    if (values.count("stat-addr")) report(log::Level::warning, "-stat-addr is accepted for compatibility and ignored");
    if (values.count("metrics-flush") && values["self-metrics-interval"].defaulted()) {
        const std::string& text = values["metrics-flush"].as<std::string>();
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), config.self_metrics_interval_s);
        if (ec != std::errc() || end != text.data() + text.size()) {
            report(log::Level::error, "-metrics-flush " + text + ": expected seconds");
            return ParseOutcome::exit_error;
        }
    }
    if (config.self_metrics_prefix.empty()) config.self_metrics_prefix = default_metrics_prefix();
    std::string problem = validate_config(config);
    if (!problem.empty()) {
        report(log::Level::error, problem);
        return ParseOutcome::exit_error;
    }
    return ParseOutcome::run;
}

std::string validate_config(const Config& config) {
    if (config.replication_factor < 1 || config.replication_factor > route::kMaxReplication)
        return "--replication-factor must be between 1 and " + std::to_string(route::kMaxReplication);
    if (config.failover_after < 1) return "--failover-after must be at least 1";
    if (config.workers > shm::kMaxWorkers)
        return "--workers " + std::to_string(config.workers) + ": at most " + std::to_string(shm::kMaxWorkers);
    if (config.max_line_length < 16 || config.max_line_length > shm::kMaxLineLengthLimit)
        return "--max-line-length must be between 16 and " + std::to_string(shm::kMaxLineLengthLimit);
    if (config.queue_cap == 0) return "--queue-cap must be at least 1";
    // polymur's own metrics go to the destinations too: their names follow the rule of every forwarded name.
    if (!config.self_metrics_prefix.empty() &&
        protocol::check_name(config.self_metrics_prefix) != protocol::LineError::none)
        return "--self-metrics-prefix must be a metric name: UTF-8 without whitespace or control characters";
    if (config.queue_bytes < (4u << 20)) return "--queue-bytes must be at least 4194304";
    if (config.destinations.size() + 1 > shm::kDestinationSlots) return "too many destinations";
    if (!config.rules.empty()) {
        if (!config.destinations.empty())
            return "--rules and --destinations: with --rules the destinations are the members of the rules file's clusters";
        if (config.hash_route())
            return "--rules and --distribution hash-route: with --rules each cluster says how it distributes";
        std::string error;
        auto table = route::compile_rules_file(config.rules, error);
        if (!table) return "--rules: " + error;
        if (table->slot_count() + 1 > shm::kDestinationSlots)
            return "--rules: " + std::to_string(table->slot_count()) + " destinations; polymur runs at most " +
                std::to_string(shm::kDestinationSlots - 1);
    }
    if (config.max_destinations < 1 || config.max_destinations + 1 > shm::kDestinationSlots)
        return "--max-destinations must be between 1 and " + std::to_string(shm::kDestinationSlots - 1);
    if (config.destinations.size() > config.max_destinations)
        return std::to_string(config.destinations.size()) + " destinations configured; --max-destinations is " +
            std::to_string(config.max_destinations);
    if (config.admin_max_connections < 1) return "--admin-max-connections must be at least 1";
    if (config.linger_ms > 100) return "--linger-ms must be at most 100";
    std::vector<route::Destination> ring_members;
    bool https_destination = false;
    for (const std::string& text : config.destinations) {
        if (transport_of(text) == DestinationTransport::https) {  // checked below with the TLS options
            https_destination = true;
            continue;
        }
        DestinationSpec parsed;
        std::string error;
        if (!parse_destination_spec(text, parsed, error)) return error;
        ring_members.push_back(parsed.endpoint);
    }
    if (config.hash_route() && !ring_members.empty()) {
        std::string error;
        if (!route::HashRing::build(config.hash_type, ring_members, error, config.hash_compat)) return error;
    }
    if (config.reconnect_interval_s == 0) return "--reconnect-interval must be at least 1";
    if (config.stats_interval_s == 0) return "--stats-interval must be at least 1";
    if (config.stall_timeout_s < 1) return "--stall-timeout must be at least 1";
    if (config.backoff_reset_s < 1) return "--backoff-reset must be at least 1";
    if (config.mode == Mode::proxy && config.gateway.empty()) return "the proxy needs --gateway https://host:port";
    if (config.mode == Mode::gateway && config.https_listen_addr.empty() && config.http_listen_addr.empty())
        return "the gateway needs --listen-port (or --https-listen-addr, or --http-listen-addr)";
    if (!config.https_listen_addr.empty() && (config.cert.empty() || config.key.empty() || config.ca_cert.empty()))
        return "the HTTPS listener needs --cert, --key and --ca-cert (client certificates are always verified)";
    if (!config.tls_listen_addr.empty() && (config.tls_cert.empty() || config.tls_key.empty()))
        return "the TLS listener (--tls-listen-addr) needs --tls-cert and --tls-key";
    if (config.tls_listen_addr.empty() &&
        !(config.tls_cert.empty() && config.tls_key.empty() && config.tls_client_ca.empty()))
        return "--tls-cert, --tls-key and --tls-client-ca are for the TLS listener; set --tls-listen-addr too";
    for (char c : config.namespace_extra_chars)
        if (c == '.' || static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f ||
            std::string_view("*?[]{}/\\,;=").find(c) != std::string_view::npos)
            return std::string("--namespace-extra-chars: '") + c + "' cannot be part of a namespace";
    std::string address_error = check_addresses_and_destinations(config);
    if (!address_error.empty()) return address_error;
    std::vector<Cidr> ranges;
    std::string cidr_error;
    if (!parse_cidrs(config.trusted_proxies, ranges, cidr_error)) return "--trusted-proxies: " + cidr_error;
    // Certificate files are read by the children; a missing one is found here, before they start.
    for (const auto& [option, path] : {std::pair<const char*, const std::string&>("cert", config.cert),
                                       {"key", config.key},
                                       {"ca-cert", config.ca_cert},
                                       {"crl", config.crl},
                                       {"client-cert", config.client_cert},
                                       {"client-key", config.client_key},
                                       {"tls-cert", config.tls_cert},
                                       {"tls-key", config.tls_key},
                                       {"tls-client-ca", config.tls_client_ca},

                                       {"destination-ca", config.destination_ca},
                                       {"destination-cert", config.destination_cert},
                                       {"destination-key", config.destination_key}}) {
        if (!path.empty() && access(path.c_str(), R_OK) != 0)
            return std::string("--") + option + " " + path + ": " + std::strerror(errno);
    }
    if (config.destination_cert.empty() != config.destination_key.empty())
        return "--destination-cert and --destination-key go together";
    if (https_destination && (config.client_cert.empty() || config.client_key.empty() || config.ca_cert.empty()))
        return "HTTPS destinations need --client-cert, --client-key and --ca-cert";
    return "";
}

}  // namespace polymur
