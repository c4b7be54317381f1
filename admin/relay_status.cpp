#include "admin/relay_status.hpp"

#include <sstream>

#include "admin/command.hpp"

namespace polymur {
namespace {

// Every state a destination can be in, so the one-hot state gauge always has the same series.
constexpr const char* kDestinationStates[] = {"starting", "connecting", "connected", "down",
                                              "stopped",  "removing",   "given_up"};

class Exposition {
public:
    explicit Exposition(std::ostringstream& out) : out_(out) {}

    void family(const char* name, const char* type, const char* help) {
        out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    }
    void sample(const char* name, uint64_t value) { out_ << name << ' ' << value << '\n'; }
    void sample(const char* name, const std::string& labels, uint64_t value) {
        out_ << name << '{' << labels << "} " << value << '\n';
    }

private:
    std::ostringstream& out_;
};

}  // namespace

std::string prometheus_label_value(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string format_stats_json(const RelayStatus& s) {
    std::ostringstream out;
    out << "{\"received\": " << s.received << ", \"invalid\": " << s.invalid << ", \"too_long\": " << s.too_long
        << ", \"unroutable\": " << s.unroutable << ", \"blackholed\": " << s.blackholed
        << ", \"connections\": " << s.connections << ", \"connections_total\": " << s.connections_total
        << ", \"pickle_invalid\": " << s.pickle_invalid << ", \"udp_datagrams\": " << s.udp_datagrams
        << ", \"udp_dropped\": " << s.udp_dropped << ", \"tls_handshakes\": " << s.tls_handshakes
        << ", \"tls_refused\": " << s.tls_refused << ", \"tls_cut\": " << s.tls_cut
        << ", \"compressed_streams\": " << s.compressed_streams << ", \"compressed_invalid\": " << s.compressed_invalid
        << ", \"workers\": " << s.workers << ", \"distribution\": \"" << s.distribution << "\", \"destinations\": {";
    bool first = true;
    for (const DestinationStatus& d : s.destinations) {
        out << (first ? "" : ", ") << "\"" << admin::json_escape(d.name) << "\": {\"state\": \"" << d.state
            << "\", \"queued\": " << d.queued << ", \"queued_bytes\": " << d.queued_bytes
            << ", \"capacity_bytes\": " << d.capacity_bytes
            << ", \"space_reserved\": " << (d.space_reserved ? "true" : "false") << ", \"sent\": " << d.sent
            << ", \"sent_bytes\": " << d.sent_bytes << ", \"dropped\": " << d.dropped
            << ", \"reconnects\": " << d.reconnects << ", \"rerouted\": " << d.rerouted
            << ", \"unsendable\": " << d.unsendable << ", \"deaths\": " << d.deaths << ", \"restarts\": " << d.restarts;
        // Only hash-route has a ring; broadcast destinations are not in one.
        if (s.distribution != "broadcast") out << ", \"in_ring\": " << (d.in_ring ? "true" : "false");
        out << "}";
        first = false;
    }
    out << "}, \"listeners\": [";
    for (size_t i = 0; i < s.listeners.size(); ++i)
        out << (i ? ", " : "") << "{\"deaths\": " << s.listeners[i].deaths
            << ", \"restarts\": " << s.listeners[i].restarts << "}";
    out << "]";
    if (s.aggregating) {
        const AggregatorStatus& a = s.aggregator;
        out << ", \"aggregator\": {\"points\": " << a.points << ", \"late\": " << a.late << ", \"future\": " << a.future
            << ", \"buckets_emitted\": " << a.buckets_emitted << ", \"results_dropped\": " << a.results_dropped
            << ", \"series\": " << a.series << ", \"replayed\": " << a.replayed << ", \"invalid\": " << a.invalid
            << ", \"discarded\": " << a.discarded << ", \"queued\": " << a.queued << ", \"dropped\": " << a.dropped
            << ", \"deaths\": " << a.deaths << ", \"restarts\": " << a.restarts << "}";
    }
    out << "}\n";
    return out.str();
}

std::string format_getdest(const std::vector<RegisteredDestination>& destinations) {
    std::ostringstream active, registered;
    bool first_active = true, first_registered = true;
    for (const RegisteredDestination& d : destinations) {
        std::string name = admin::json_escape(d.name);
        registered << (first_registered ? "\n" : ",\n") << "  \"" << name << "\": \""
                   << admin::rfc3339_nano(d.registered_unix_ns) << "\"";
        first_registered = false;
        if (d.active) {
            active << (first_active ? "\n" : ",\n") << "  \"" << name << "\"";
            first_active = false;
        }
    }
    std::string out = "{\n \"active\": [";
    out += first_active ? "]" : active.str() + "\n ]";
    out += ",\n \"registered\": {";
    out += first_registered ? "}" : registered.str() + "\n }";
    out += "\n}\n";
    return out;
}

std::string format_prometheus(const RelayStatus& s, const Health& health) {
    std::ostringstream out;
    Exposition e(out);
    const struct {
        const char* name;
        const char* type;
        const char* help;
        uint64_t value;
    } relay[] = {
        {"polymur_ready", "gauge",
         "1 when the relay is running and every child process is alive and reporting (as /health).",
         health.ready ? 1u : 0u},
        {"polymur_start_time_seconds", "gauge", "Start time of the supervisor in seconds since the epoch.",
         static_cast<uint64_t>(s.start_unix_seconds)},
        {"polymur_workers", "gauge", "Listener worker processes.", s.workers},
        {"polymur_received_total", "counter", "Metric lines received from clients.", s.received},
        {"polymur_invalid_total", "counter", "Lines dropped because they did not parse.", s.invalid},
        {"polymur_too_long_total", "counter", "Lines dropped because they were longer than --max-line-length.",
         s.too_long},
        {"polymur_unroutable_total", "counter", "Lines dropped because no destination could take them.", s.unroutable},
        {"polymur_blackholed_total", "counter", "Lines dropped by a rules file's blackhole or validate ... else drop.",
         s.blackholed},
        {"polymur_connections", "gauge", "Client connections open now.", s.connections},
        {"polymur_connections_total", "counter", "Client connections accepted.", s.connections_total},
        {"polymur_pickle_invalid_total", "counter",
         "Pickle frames refused (forbidden or unknown opcode, cut short, too long); each closed its connection.",
         s.pickle_invalid},
        {"polymur_udp_datagrams_total", "counter", "Datagrams read from the UDP listener.", s.udp_datagrams},
        {"polymur_udp_dropped_total", "counter",
         "Datagrams the kernel dropped because the UDP receive buffer was full.", s.udp_dropped},
        {"polymur_tls_handshakes_total", "counter", "TLS handshakes completed on the TLS listener.", s.tls_handshakes},
        {"polymur_tls_refused_total", "counter",
         "TLS handshakes that failed on the TLS listener (a refused or missing client certificate, not TLS); each closed its connection.",
         s.tls_refused},
        {"polymur_tls_cut_total", "counter",
         "TLS handshakes cut at --handshake-timeout, or closed as the oldest beyond 256 in progress per worker.",
         s.tls_cut},
        {"polymur_compressed_streams_total", "counter", "Line connections that were gzip or LZ4 streams.",
         s.compressed_streams},
        {"polymur_compressed_invalid_total", "counter",
         "gzip or LZ4 streams closed because they did not decode or were cut short.", s.compressed_invalid},
    };
    for (const auto& m : relay) {
        e.family(m.name, m.type, m.help);
        e.sample(m.name, m.value);
    }

    if (s.aggregating) {
        const struct {
            const char* name;
            const char* help;
            uint64_t value;
        } aggregator[] = {
            {"polymur_aggregator_points_total", "Points taken into an aggregate bucket (once per compute).",
             s.aggregator.points},
            {"polymur_aggregator_buckets_emitted_total", "Aggregate buckets emitted (one result each).",
             s.aggregator.buckets_emitted},
            {"polymur_aggregator_late_total", "Aggregate points dropped: their bucket was emitted already.",
             s.aggregator.late},
            {"polymur_aggregator_future_total", "Aggregate points dropped: beyond the newest bucket of the series.",
             s.aggregator.future},
            {"polymur_aggregator_results_dropped_total", "Aggregate results a full destination queue refused.",
             s.aggregator.results_dropped},
            {"polymur_aggregator_dropped_total", "Aggregate points dropped because the aggregator's queue was full.",
             s.aggregator.dropped},
            {"polymur_aggregator_discarded_total",
             "Queued aggregate points discarded: their rule changed or was removed since they were queued.",
             s.aggregator.discarded},
            {"polymur_aggregator_deaths_total", "Exits of the aggregator process the supervisor did not ask for.",
             s.aggregator.deaths},
        };
        for (const auto& m : aggregator) {
            e.family(m.name, "counter", m.help);
            e.sample(m.name, m.value);
        }
        e.family("polymur_aggregator_series", "gauge", "Aggregate series open now.");
        e.sample("polymur_aggregator_series", s.aggregator.series);
        e.family("polymur_aggregator_queued", "gauge", "Aggregate points in the aggregator's queue (open buckets).");
        e.sample("polymur_aggregator_queued", s.aggregator.queued);
    }

    std::vector<std::string> labels;
    for (const DestinationStatus& d : s.destinations)
        labels.push_back("destination=\"" + prometheus_label_value(d.name) + "\"");
    auto per_destination = [&](const char* name, const char* type, const char* help,
                               uint64_t DestinationStatus::*field) {
        e.family(name, type, help);
        for (size_t i = 0; i < s.destinations.size(); ++i) e.sample(name, labels[i], s.destinations[i].*field);
    };
    per_destination("polymur_destination_queued", "gauge", "Lines waiting in the destination's queue.",
                    &DestinationStatus::queued);
    per_destination("polymur_destination_queued_bytes", "gauge", "Bytes waiting in the destination's queue.",
                    &DestinationStatus::queued_bytes);
    per_destination("polymur_destination_capacity_bytes", "gauge",
                    "Bytes the destination's queue holds (less than --queue-bytes when the disk was short).",
                    &DestinationStatus::capacity_bytes);
    per_destination("polymur_destination_sent_total", "counter", "Lines delivered to the destination.",
                    &DestinationStatus::sent);
    per_destination("polymur_destination_sent_bytes_total", "counter", "Bytes delivered to the destination.",
                    &DestinationStatus::sent_bytes);
    per_destination("polymur_destination_dropped_total", "counter",
                    "Lines dropped because the destination's queue was full.", &DestinationStatus::dropped);
    per_destination("polymur_destination_reconnects_total", "counter", "Reconnect attempts to the destination.",
                    &DestinationStatus::reconnects);
    per_destination("polymur_destination_rerouted_total", "counter",
                    "Lines moved from the destination's queue to other destinations (hash-route failover).",
                    &DestinationStatus::rerouted);
    per_destination("polymur_destination_unsendable_total", "counter",
                    "Queued lines the destination's wire format cannot carry (pickle://: not a valid line, or a name "
                    "longer than a frame), left out.",
                    &DestinationStatus::unsendable);
    if (s.distribution == "hash-route") {
        e.family("polymur_destination_in_ring", "gauge", "1 when hash-route places new metrics on the destination.");
        for (size_t i = 0; i < s.destinations.size(); ++i)
            e.sample("polymur_destination_in_ring", labels[i], s.destinations[i].in_ring);
    }
    per_destination("polymur_destination_output_deaths_total", "counter",
                    "Exits of the destination's output process the supervisor did not ask for (crash, kill, stall).",
                    &DestinationStatus::deaths);
    per_destination("polymur_destination_output_restarts_total", "counter",
                    "Restarts of the destination's output process.", &DestinationStatus::restarts);
    auto per_listener = [&](const char* name, const char* help, uint64_t ListenerStatus::*field) {
        e.family(name, "counter", help);
        for (size_t i = 0; i < s.listeners.size(); ++i)
            e.sample(name, "listener=\"" + std::to_string(i) + "\"", s.listeners[i].*field);
    };
    per_listener("polymur_listener_deaths_total",
                 "Exits of the listener worker process the supervisor did not ask for (crash, kill, stall).",
                 &ListenerStatus::deaths);
    per_listener("polymur_listener_restarts_total", "Restarts of the listener worker process.",
                 &ListenerStatus::restarts);
    e.family("polymur_destination_state", "gauge", "1 for the destination's current state, 0 for the others.");
    for (size_t i = 0; i < s.destinations.size(); ++i)
        for (const char* state : kDestinationStates)
            e.sample("polymur_destination_state", labels[i] + ",state=\"" + state + "\"",
                     s.destinations[i].state == state);
    return out.str();
}

}  // namespace polymur
