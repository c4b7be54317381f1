#include "common/validate.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/heritage.hpp"
#include "common/net.hpp"
#include "common/resolve_within.hpp"
#include "route/destination.hpp"
#include "shm/control.hpp"

namespace polymur {
namespace {

struct Bound {
    std::string option, address;
    int family = 0;
    uint16_t port = 0;
    bool wildcard = false;
    std::string ip;  // numeric form
};

// Resolves a listen address as bind() will see it; every result is one Bound.
std::string resolve_listen(const ListenAddress& listen, std::vector<Bound>& out) {
    const std::string where = "--" + listen.option + " " + listen.address + ": ";
    std::string host, port, error;
    if (!net::split_host_port(listen.address, host, port, error)) return "--" + listen.option + " " + error;
    // inet_aton would take "1.2" for 1.0.0.2; an address made of digits and dots must be a dotted quad.
    if (!host.empty() && host.find_first_not_of("0123456789.") == std::string::npos) {
        struct in_addr ignored = {};
        if (inet_pton(AF_INET, host.c_str(), &ignored) != 1) return where + "'" + host + "' is not an IPv4 address";
    }
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    struct addrinfo* found = nullptr;
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) return where + "cannot resolve '" + host + "': " + gai_strerror(rc);
    for (auto* ai = found; ai; ai = ai->ai_next) {
        Bound b;
        b.option = listen.option;
        b.address = listen.address;
        b.family = ai->ai_family;
        char text[INET6_ADDRSTRLEN] = "";
        if (ai->ai_family == AF_INET) {
            auto* sin = reinterpret_cast<const struct sockaddr_in*>(ai->ai_addr);
            b.port = ntohs(sin->sin_port);
            b.wildcard = sin->sin_addr.s_addr == htonl(INADDR_ANY);
            inet_ntop(AF_INET, &sin->sin_addr, text, sizeof text);
        } else if (ai->ai_family == AF_INET6) {
            auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(ai->ai_addr);
            b.port = ntohs(sin6->sin6_port);
            b.wildcard = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
            inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof text);
        } else {
            continue;
        }
        b.ip = text;
        out.push_back(b);
    }
    freeaddrinfo(found);
    return "";
}

// Two sockets cannot both bind these (Linux: [::] also takes IPv4 unless v6only).
bool collide(const Bound& a, const Bound& b) {
    if (a.port != b.port || a.port == 0) return false;
    if (a.family == b.family) return a.wildcard || b.wildcard || a.ip == b.ip;
    return (a.family == AF_INET6 && a.wildcard) || (b.family == AF_INET6 && b.wildcard);
}

}  // namespace

std::string check_destination_text(const std::string& text, DestinationSpec* parsed) {
    if (text.size() >= shm::kDestinationTextMax)
        return "destination " + net::printable(text, 64) + ": longer than " +
            std::to_string(shm::kDestinationTextMax - 1) + " characters";
    std::string error;
    DestinationSpec spec;
    if (!parse_destination_spec(text, spec, error)) return error;
    if (parsed) *parsed = std::move(spec);
    return "";
}

std::vector<ListenAddress> listen_addresses(const Config& config) {
    std::vector<ListenAddress> out;
    if (config.plaintext_listener)
        out.push_back({config.mode == Mode::gateway ? "listen-plaintext" : "listen-addr", config.listen_addr});
    if (!config.https_listen_addr.empty()) out.push_back({"https-listen-addr", config.https_listen_addr});
    if (!config.http_listen_addr.empty()) out.push_back({"http-listen-addr", config.http_listen_addr});
    if (!config.pickle_listen_addr.empty()) out.push_back({"pickle-listen-addr", config.pickle_listen_addr});
    if (!config.tls_listen_addr.empty()) out.push_back({"tls-listen-addr", config.tls_listen_addr});
    out.push_back({"api-addr", config.api_addr});
    if (!config.metrics_addr.empty()) out.push_back({"metrics-addr", config.metrics_addr});
    return out;
}

std::string check_addresses_and_destinations(const Config& config) {
    std::vector<Bound> bound;
    for (const ListenAddress& listen : listen_addresses(config)) {
        size_t before = bound.size();
        std::string error = resolve_listen(listen, bound);
        if (!error.empty()) return error;
        for (size_t i = 0; i < before; ++i)
            for (size_t j = before; j < bound.size(); ++j)
                if (collide(bound[i], bound[j]))
                    return "--" + bound[i].option + " " + bound[i].address + " and --" + bound[j].option + " " +
                        bound[j].address + " are the same address; give each its own port";
    }
    if (!config.udp_listen_addr.empty()) {
        // UDP ports are their own space: carbon's convention is 2003 for both TCP and UDP lines.
        std::vector<Bound> udp;
        std::string error = resolve_listen({"udp-listen-addr", config.udp_listen_addr}, udp);
        if (!error.empty()) return error;
    }
    for (const std::string& d : config.destinations) {
        std::string error = check_destination_text(d);
        if (!error.empty()) return error;
    }
    for (size_t i = 0; i < config.destinations.size(); ++i)
        for (size_t j = 0; j < i; ++j)
            if (config.destinations[i] == config.destinations[j])
                return "destination " + config.destinations[i] + " is listed twice";
    return "";
}

namespace {

// How long the supervisor waits for the lookups behind these warnings at most (resolve_within).
constexpr int kResolveWaitMs = 2000;

std::string host_of(const std::string& destination) {
    DestinationSpec spec;
    std::string error;
    return parse_destination_spec(destination, spec, error) ? spec.endpoint.host : std::string();
}

std::string resolve_warning(const std::string& destination, const std::string& host, int code) {
    if (code == 0) return "";
    return "destination " + destination + ": host '" + host + "' does not resolve now (" +
        describe_resolve_failure(code, kResolveWaitMs) + "); its metrics are queued until it does";
}

}  // namespace

std::string unresolvable_destination_warning(const std::string& destination) {
    const std::string host = host_of(destination);
    if (host.empty()) return "";
    return resolve_warning(destination, host, resolve_within({host}, kResolveWaitMs)[0]);
}

std::vector<std::string> config_warnings(const Config& config) {
    std::vector<std::string> warnings;
    std::vector<std::string> hosts;  // every destination's host, each looked up once, side by side
    for (const std::string& d : config.destinations)
        if (std::string host = host_of(d); std::find(hosts.begin(), hosts.end(), host) == hosts.end())
            hosts.push_back(std::move(host));
    const std::vector<int> codes = resolve_within(hosts, kResolveWaitMs);
    for (const std::string& d : config.destinations) {
        const std::string host = host_of(d);
        const size_t i = size_t(std::find(hosts.begin(), hosts.end(), host) - hosts.begin());
        std::string warning = resolve_warning(d, host, codes[i]);
        if (!warning.empty()) warnings.push_back(warning);
    }
    if (config.hash_route() && config.hash_type == route::HashType::fnv1a_ch) {
        // carbon's fnv1a_ch places a node by its instance alone (ROUTING.md): destinations that share
        // one, or have none, take the same ring positions and one of them gets nearly every metric.
        std::vector<std::pair<std::string, std::string>> seen;  // instance ("None" for none), destination
        for (const std::string& d : config.destinations) {
            DestinationSpec spec;
            std::string error;
            if (!parse_destination_spec(d, spec, error) || !spec.ring_member()) continue;
            const route::Destination& parsed = spec.endpoint;
            // carbon-c-relay keys a destination without instance on its host and port
            if (!parsed.instance && config.hash_compat == route::HashCompat::carbon_c_relay) continue;
            std::string instance = parsed.instance.value_or("None");
            auto other = std::find_if(seen.begin(), seen.end(), [&](const auto& s) { return s.first == instance; });
            if (other != seen.end()) {
                warnings.push_back("--hash-type fnv1a_ch: " + other->second + " and " + d +
                                   (parsed.instance ? " share the instance '" + instance + "'" : " have no instance") +
                                   "; fnv1a_ch places destinations by instance alone, so one of them gets almost every "
                                   "metric: give each its own instance (host:port:instance)");
                break;
            }
            seen.emplace_back(instance, d);
        }
    }
    if (!config.hash_route() && config.destinations.empty() && !config.console_out && config.rules.empty())
        warnings.push_back(
            "broadcast with no destinations: every metric received is discarded and counted as "
            "unroutable until one is added (putdest)");
    return warnings;
}

std::string check_state_dir(const Config& config) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path dir(config.state_dir);
    if (fs::exists(dir, ec)) {
        if (!fs::is_directory(dir, ec)) return "--state-dir " + config.state_dir + ": not a directory";
        if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0)
            return "--state-dir " + config.state_dir + ": " + std::strerror(errno);
        return "";
    }
    // start creates it (and its parents): the nearest existing ancestor must be a writable directory.
    fs::path parent = dir.parent_path();
    while (!parent.empty() && !fs::exists(parent, ec) && parent != parent.root_path()) parent = parent.parent_path();
    if (parent.empty()) parent = ".";
    if (!fs::is_directory(parent, ec) || access(parent.c_str(), W_OK | X_OK) != 0)
        return "--state-dir " + config.state_dir + ": cannot be created in " + parent.string();
    return "";
}

std::string try_binding(const Config& config, std::vector<std::string>& warnings) {
    for (const ListenAddress& listen : listen_addresses(config)) {
        std::string error;
        UniqueFd fd = net::listen_tcp(listen.address, 1, error);
        if (fd) continue;
        if (error.find(std::strerror(EADDRINUSE)) != std::string::npos) {
            warnings.push_back("--" + listen.option + " " + listen.address +
                               ": in use now (by the running polymur?); "
                               "a start would fail until it is free");
            continue;
        }
        return "--" + listen.option + " " + listen.address + ": cannot listen: " + error;
    }
    return "";
}

}  // namespace polymur
