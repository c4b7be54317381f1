#include "common/self_metrics.hpp"

#include <unistd.h>

#include <cctype>

namespace polymur {

std::string metric_safe(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (unsigned char c : text)
        out += (c == '.' || c == ':' || c == '/' || std::isspace(c) || c < 0x20) ? '_' : static_cast<char>(c);
    return out;
}

std::string default_metrics_prefix() {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || !host[0]) return "carbon.relays.unknown";
    std::string name(host);
    name = name.substr(0, name.find('.'));
    return "carbon.relays." + metric_safe(name);
}

std::string format_self_metrics(const std::string& prefix, const RelayCounters& c, int64_t unix_seconds) {
    std::string out;
    std::string ts = " ";  // appended, not "literal" + temporary: GCC 12 -Wrestrict false positive
    ts += std::to_string(unix_seconds);
    ts += '\n';
    auto add = [&](const std::string& name, uint64_t value) {
        out += prefix + "." + name + " " + std::to_string(value) + ts;
    };
    add("metricsReceived", c.received);
    add("metricsSent", c.sent);
    add("metricsQueued", c.queued);
    add("metricsDropped", c.dropped);
    add("metricsInvalid", c.invalid);
    add("metricsDiscarded", c.invalid);  // carbon-c-relay's name for the same count
    add("metricsBlackholed", c.unroutable);
    add("connections", c.connections_total);
    add("connectionsOpen", c.connections_open);
    if (c.aggregating) {
        add("aggregator.points", c.aggregator_points);
        add("aggregator.bucketsEmitted", c.aggregator_buckets);
        add("aggregator.late", c.aggregator_late);
    }
    for (const auto& d : c.destinations) {
        const std::string base = "destinations." + metric_safe(d.name) + ".";
        add(base + "sent", d.sent);
        add(base + "queued", d.queued);
        add(base + "dropped", d.dropped);
    }
    return out;
}

}  // namespace polymur
