#include "common/self_metrics.hpp"

#include <gtest/gtest.h>

namespace polymur {
namespace {

TEST(SelfMetrics, CarbonCRelayNamesCumulativeValues) {
    RelayCounters c;
    c.received = 10;
    c.sent = 18;
    c.queued = 2;
    c.dropped = 1;
    c.invalid = 3;
    c.unroutable = 4;
    c.connections_total = 5;
    c.connections_open = 2;
    c.destinations.push_back({"10.0.0.1:2003:a", 9, 1, 0});
    std::string text = format_self_metrics("carbon.relays.web01", c, 1700000000);
    EXPECT_EQ(text,
              "carbon.relays.web01.metricsReceived 10 1700000000\n"
              "carbon.relays.web01.metricsSent 18 1700000000\n"
              "carbon.relays.web01.metricsQueued 2 1700000000\n"
              "carbon.relays.web01.metricsDropped 1 1700000000\n"
              "carbon.relays.web01.metricsInvalid 3 1700000000\n"
              "carbon.relays.web01.metricsDiscarded 3 1700000000\n"
              "carbon.relays.web01.metricsBlackholed 4 1700000000\n"
              "carbon.relays.web01.connections 5 1700000000\n"
              "carbon.relays.web01.connectionsOpen 2 1700000000\n"
              "carbon.relays.web01.destinations.10_0_0_1_2003_a.sent 9 1700000000\n"
              "carbon.relays.web01.destinations.10_0_0_1_2003_a.queued 1 1700000000\n"
              "carbon.relays.web01.destinations.10_0_0_1_2003_a.dropped 0 1700000000\n");
}

TEST(SelfMetrics, MetricSafeReplacesSeparators) {
    EXPECT_EQ(metric_safe("[2001:db8::1]:2003"), "[2001_db8__1]_2003");
    EXPECT_EQ(metric_safe("https://gw.example:443"), "https___gw_example_443");
    EXPECT_EQ(metric_safe("a b\tc"), "a_b_c");
}

TEST(SelfMetrics, DefaultPrefixUsesTheShortHostname) {
    std::string prefix = default_metrics_prefix();
    EXPECT_EQ(prefix.rfind("carbon.relays.", 0), 0u);
    EXPECT_EQ(prefix.find('.', 14), std::string::npos) << prefix;  // no domain part
}

}  // namespace
}  // namespace polymur
