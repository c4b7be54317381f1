// The admin protocol's replies and the Prometheus exposition, rendered from plain structs byte for byte
// (admin/relay_status.hpp): the supervisor only fills the structs.
#include "admin/relay_status.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace polymur {
namespace {

DestinationStatus destination(const char* name, const char* state, uint64_t base) {
    DestinationStatus d;
    d.name = name;
    d.state = state;
    d.queued = base + 1;
    d.queued_bytes = base + 2;
    d.sent = base + 3;
    d.sent_bytes = base + 4;
    d.dropped = base + 5;
    d.reconnects = base + 6;
    d.rerouted = base + 7;
    d.unsendable = base + 8;
    d.capacity_bytes = base + 9;
    d.deaths = base + 10;
    d.restarts = base + 11;
    return d;
}

RelayStatus counters(const char* distribution) {
    RelayStatus s;
    s.received = 1;
    s.invalid = 2;
    s.too_long = 3;
    s.unroutable = 4;
    s.blackholed = 5;
    s.connections = 6;
    s.connections_total = 7;
    s.pickle_invalid = 8;
    s.udp_datagrams = 9;
    s.udp_dropped = 10;
    s.tls_handshakes = 11;
    s.tls_refused = 12;
    s.tls_cut = 13;
    s.compressed_streams = 14;
    s.compressed_invalid = 15;
    s.workers = 2;
    s.distribution = distribution;
    return s;
}

const char* const kCounters =
    "{\"received\": 1, \"invalid\": 2, \"too_long\": 3, \"unroutable\": 4, \"blackholed\": 5, \"connections\": 6, "
    "\"connections_total\": 7, \"pickle_invalid\": 8, \"udp_datagrams\": 9, \"udp_dropped\": 10, "
    "\"tls_handshakes\": 11, \"tls_refused\": 12, \"tls_cut\": 13, \"compressed_streams\": 14, "
    "\"compressed_invalid\": 15, \"workers\": 2, ";

TEST(StatsReply, NothingConfigured) {
    EXPECT_EQ(format_stats_json(counters("broadcast")),
              std::string(kCounters) + "\"distribution\": \"broadcast\", \"destinations\": {}, \"listeners\": []}\n");
}

TEST(StatsReply, BroadcastDestinationsAndListeners) {
    RelayStatus s = counters("broadcast");
    s.destinations.push_back(destination("a:2003", "connected", 100));
    s.destinations.push_back(destination("b\"x\\:2004", "down", 200));
    s.destinations.back().space_reserved = false;
    s.listeners = {{1, 2}, {0, 0}};
    EXPECT_EQ(format_stats_json(s),
              std::string(kCounters) +
                  "\"distribution\": \"broadcast\", \"destinations\": {"
                  "\"a:2003\": {\"state\": \"connected\", \"queued\": 101, \"queued_bytes\": 102, "
                  "\"capacity_bytes\": 109, \"space_reserved\": true, \"sent\": 103, \"sent_bytes\": 104, "
                  "\"dropped\": 105, \"reconnects\": 106, \"rerouted\": 107, \"unsendable\": 108, \"deaths\": 110, "
                  "\"restarts\": 111}, "
                  "\"b\\\"x\\\\:2004\": {\"state\": \"down\", \"queued\": 201, \"queued_bytes\": 202, "
                  "\"capacity_bytes\": 209, \"space_reserved\": false, \"sent\": 203, \"sent_bytes\": 204, "
                  "\"dropped\": 205, \"reconnects\": 206, \"rerouted\": 207, \"unsendable\": 208, \"deaths\": 210, "
                  "\"restarts\": 211}}, "
                  "\"listeners\": [{\"deaths\": 1, \"restarts\": 2}, {\"deaths\": 0, \"restarts\": 0}]}\n");
}

TEST(StatsReply, HashRouteAndRulesSayWhetherEachDestinationIsInTheRing) {
    for (const char* distribution : {"hash-route", "rules"}) {
        RelayStatus s = counters(distribution);
        s.destinations.push_back(destination("a:2003", "connected", 0));
        s.destinations.back().in_ring = true;
        s.destinations.push_back(destination("b:2003", "down", 0));
        std::string reply = format_stats_json(s);
        EXPECT_NE(reply.find("\"restarts\": 11, \"in_ring\": true}, \"b:2003\""), std::string::npos) << reply;
        EXPECT_NE(reply.find("\"restarts\": 11, \"in_ring\": false}}, \"listeners\""), std::string::npos) << reply;
    }
}

TEST(GetdestReply, NothingRegistered) {
    EXPECT_EQ(format_getdest({}), "{\n \"active\": [],\n \"registered\": {}\n}\n");
}

TEST(GetdestReply, RegisteredWithTimesAndOnlyTheActiveListedAsActive) {
    std::vector<RegisteredDestination> listed = {{"a:2003", 1700000000123000000, true},
                                                 {"b:2003:x", 1700000001000000000, false},
                                                 {"c\"\\:2003", 1700000002000000001, true}};
    EXPECT_EQ(format_getdest(listed),
              "{\n"
              " \"active\": [\n"
              "  \"a:2003\",\n"
              "  \"c\\\"\\\\:2003\"\n"
              " ],\n"
              " \"registered\": {\n"
              "  \"a:2003\": \"2023-11-14T22:13:20.123Z\",\n"
              "  \"b:2003:x\": \"2023-11-14T22:13:21Z\",\n"
              "  \"c\\\"\\\\:2003\": \"2023-11-14T22:13:22.000000001Z\"\n"
              " }\n"
              "}\n");
}

TEST(GetdestReply, NoneActive) {
    EXPECT_EQ(format_getdest({{"a:2003", 0, false}}),
              "{\n \"active\": [],\n \"registered\": {\n  \"a:2003\": \"1970-01-01T00:00:00Z\"\n }\n}\n");
}

TEST(Prometheus, LabelValuesAreEscaped) {
    EXPECT_EQ(prometheus_label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    RelayStatus s;
    s.destinations.push_back({"10.0.0.1:2003:\"x\"", "connected", 1, 2, 3, 4, 5, 6, 7, true, false});
    std::string text = format_prometheus(s, {true, "ok"});
    EXPECT_NE(text.find("polymur_destination_sent_total{destination=\"10.0.0.1:2003:\\\"x\\\"\"} 3\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("polymur_destination_state{destination=\"10.0.0.1:2003:\\\"x\\\"\",state=\"connected\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("# TYPE polymur_destination_dropped_total counter\n"), std::string::npos);
    EXPECT_NE(text.find("polymur_ready 1\n"), std::string::npos);
}

TEST(Prometheus, RelayCountersListenersAndOneHotStates) {
    RelayStatus s = counters("broadcast");
    s.start_unix_seconds = 1700000000;
    s.destinations.push_back(destination("a:2003", "down", 0));
    s.listeners = {{3, 4}};
    std::string text = format_prometheus(s, {false, "starting"});
    for (const char* line :
         {"# HELP polymur_ready 1 when the relay is running and every child process is alive and reporting (as "
          "/health).\n# TYPE polymur_ready gauge\npolymur_ready 0\n",
          "polymur_start_time_seconds 1700000000\n", "polymur_received_total 1\n", "polymur_tls_cut_total 13\n",
          "polymur_compressed_invalid_total 15\n", "polymur_destination_queued{destination=\"a:2003\"} 1\n",
          "polymur_destination_output_restarts_total{destination=\"a:2003\"} 11\n",
          "polymur_listener_deaths_total{listener=\"0\"} 3\n", "polymur_listener_restarts_total{listener=\"0\"} 4\n",
          "polymur_destination_state{destination=\"a:2003\",state=\"connected\"} 0\n",
          "polymur_destination_state{destination=\"a:2003\",state=\"down\"} 1\n"})
        EXPECT_NE(text.find(line), std::string::npos) << line << "\nnot in\n" << text;
    // Broadcast has no ring, so no in_ring series.
    EXPECT_EQ(text.find("polymur_destination_in_ring"), std::string::npos);
    s.distribution = "hash-route";
    EXPECT_NE(format_prometheus(s, {true, "ok"}).find("polymur_destination_in_ring{destination=\"a:2003\"} 0\n"),
              std::string::npos);
}

}  // namespace
}  // namespace polymur
