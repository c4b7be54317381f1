#include "supervisor/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iostream>
#include <sstream>

#include <boost/program_options.hpp>

#include "route/hash_ring.hpp"
#include "shm/control.hpp"

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
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return c == '_' ? '-' : std::tolower(c); });
    return name;
}

}  // namespace

uint32_t default_worker_count() {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    return static_cast<uint32_t>(std::clamp<long>(cpus, 1, 16));
}

ParseOutcome parse_config(int argc, const char* const* argv, const char* const* environment, Config& config) {
    Config defaults;
    std::string destinations;
    po::options_description options("polymur options (one or two dashes; also POLYMUR_<NAME> and --config)");
    // clang-format off
    options.add_options()
        ("help,h", "show this help and exit")
        ("version", "print the version and exit")
        ("config", po::value(&config.config_file), "config file of `name = value` lines (every option below)")
        ("listen-addr", po::value(&config.listen_addr)->default_value(defaults.listen_addr), "plaintext metrics listen address")
        ("api-addr", po::value(&config.api_addr)->default_value(defaults.api_addr), "admin protocol TCP address (keep it on loopback)")
        ("admin-socket", po::value(&config.admin_socket), "admin protocol unix socket (default <state-dir>/polymur.sock)")
        ("destinations", po::value(&destinations)->default_value(""), "comma-separated host:port[:instance] destinations")
        ("distribution", po::value(&config.distribution)->default_value(defaults.distribution), "broadcast (mirror to every destination) or hash-route (Graphite's consistent hashing)")
        ("hash-type", po::value(&config.hash_type)->default_value(defaults.hash_type), "hash-route ring: carbon_ch, fnv1a_ch or jump_fnv1a_ch")
        ("replication-factor", unsigned_value(&config.replication_factor), "hash-route: destinations per metric")
        ("diverse-replicas", po::value(&config.diverse_replicas)->default_value(true)->implicit_value(true), "hash-route: replicas on distinct hosts (carbon's DIVERSE_REPLICAS)")
        ("failover", po::value(&config.failover)->default_value(defaults.failover), "hash-route: reroute (a failed destination leaves the ring and its queue moves to the others) or hold (keep its queue until it returns)")
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
        ("stats-interval", unsigned_value(&config.stats_interval_s), "seconds between the rate lines in the log")
        ("drain-timeout", unsigned_value(&config.drain_timeout_s), "seconds an output may spend delivering its queue on shutdown")
        ("stall-timeout", unsigned_value(&config.stall_timeout_s), "seconds without a heartbeat (or, for an output, without the destination accepting data) before a child is restarted")
        ("stat-addr", po::value<std::string>(), "accepted for Polymur compatibility; ignored")
        ("metrics-flush", po::value<int>(), "accepted for Polymur compatibility; ignored");
    // clang-format on

    po::variables_map values;
    try {
        // Go-style flags: -listen-addr=x is a long option. No abbreviations: Go's flags have none,
        // and a guessed prefix that later becomes ambiguous would break a working command line.
        auto style = (po::command_line_style::default_style & ~po::command_line_style::allow_guessing) |
                     po::command_line_style::allow_long_disguise;
        po::positional_options_description no_positional;  // a stray word is an error, not ignored
        po::store(po::command_line_parser(argc, argv).options(options).style(style).positional(no_positional).run(), values);
        if (values.count("help")) {
            std::cout << "usage: polymur [options]\n       polymur lookup --help\n\n" << options << '\n';
            return ParseOutcome::exit_ok;
        }
        if (values.count("version")) {
            std::cout << "polymur " << POLYMUR_VERSION << '\n';
            return ParseOutcome::exit_ok;
        }
        // Environment before the file: whatever is stored first wins.
        po::parsed_options from_env(&options);
        for (const char* const* entry = environment; entry && *entry; ++entry) {
            std::string text = *entry;
            size_t eq = text.find('=');
            if (eq == std::string::npos) continue;
            std::string name = environment_name(text.substr(0, eq));
            if (name.empty()) continue;
            if (name == "help" || name == "version" || name == "bin" || !options.find_nothrow(name, false)) {
                if (name != "bin")
                    std::cerr << "polymur: environment variable " << text.substr(0, eq) << " names no option; ignored\n";
                continue;
            }
            from_env.options.emplace_back(name, std::vector<std::string>{text.substr(eq + 1)});
            from_env.options.back().original_tokens = {text};
        }
        po::store(from_env, values);
        std::string file = values.count("config") ? values["config"].as<std::string>() : "";
        if (!file.empty()) {
            std::ifstream in(file);
            if (!in) {
                std::cerr << "polymur: config file " << file << ": cannot open\n";
                return ParseOutcome::exit_error;
            }
            po::store(po::parse_config_file(in, options, false), values);
        }
        po::notify(values);
    } catch (const po::error& e) {
        std::cerr << "polymur: " << e.what() << " (try --help)\n";
        return ParseOutcome::exit_error;
    }
    config.destinations = split_list(destinations);
    if (config.workers == 0) config.workers = default_worker_count();
    if (config.admin_socket.empty()) config.admin_socket = config.state_dir + "/polymur.sock";
    if (values.count("stat-addr") || values.count("metrics-flush"))
        std::cerr << "polymur: -stat-addr and -metrics-flush are accepted for compatibility and ignored\n";
    std::string problem = validate_config(config);
    if (!problem.empty()) {
        std::cerr << "polymur: " << problem << '\n';
        return ParseOutcome::exit_error;
    }
    return ParseOutcome::run;
}

std::string validate_config(const Config& config) {
    if (config.distribution != "broadcast" && config.distribution != "hash-route")
        return "--distribution " + config.distribution + ": expected broadcast or hash-route";
    route::HashType hash_type;
    if (!route::parse_hash_type(config.hash_type, hash_type))
        return "--hash-type " + config.hash_type + ": expected carbon_ch, fnv1a_ch or jump_fnv1a_ch";
    if (config.replication_factor < 1 || config.replication_factor > route::kMaxReplication)
        return "--replication-factor must be between 1 and " + std::to_string(route::kMaxReplication);
    if (config.failover != "reroute" && config.failover != "hold") return "--failover " + config.failover + ": expected reroute or hold";
    if (config.failover_after < 1) return "--failover-after must be at least 1";
    if (config.workers > shm::kMaxWorkers) return "--workers " + std::to_string(config.workers) + ": at most " + std::to_string(shm::kMaxWorkers);
    if (config.max_line_length < 16 || config.max_line_length > (1u << 20)) return "--max-line-length must be between 16 and 1048576";
    if (config.queue_cap == 0) return "--queue-cap must be at least 1";
    if (config.queue_bytes < (4u << 20)) return "--queue-bytes must be at least 4194304";
    if (config.destinations.size() + 1 > shm::kMaxDestinations) return "too many destinations";
    if (config.reconnect_interval_s == 0) return "--reconnect-interval must be at least 1";
    if (config.stats_interval_s == 0) return "--stats-interval must be at least 1";
    if (config.stall_timeout_s < 1) return "--stall-timeout must be at least 1";
    return "";
}

}  // namespace polymur
