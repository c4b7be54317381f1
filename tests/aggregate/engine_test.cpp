// The aggregation engine against what carbon-c-relay 3.7.3 did when run (values and windows from
// tests/aggregate/differential.py's experiments): which bucket a timestamp falls in, the window of open buckets,
// when a bucket is emitted, late points, the values of every function, and no allocation per point.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aggregate/engine.hpp"

size_t allocation_count();  // allocation_counter.cpp

using namespace polymur;

namespace {

std::unique_ptr<route::RoutingTable> table_of(const std::string& text) {
    route::rules::RulesConfig config;
    std::string error;
    EXPECT_TRUE(route::rules::parse_rules_text(text, "t.conf", config, error)) << error;
    auto table = route::RoutingTable::build(config, error);
    EXPECT_TRUE(table) << error;
    return table;
}

struct Collected {
    std::vector<std::string> lines;
    std::function<void(const aggregate::Result&)> sink() {
        return [this](const aggregate::Result& r) { lines.emplace_back(r.line); };
    }
};

}  // namespace

TEST(AggregateEngine, WindowIsCeilExpireOverIntervalPlusTwoBucketsFromNowMinusExpire) {
    // Run: interval 10, expire 15, points sent at 918: 900..939 taken, 899 and 940 dropped.
    auto t = table_of("aggregate ^in\\.(.*)$ every 10 seconds expire after 15 seconds compute count write to c.\\1;\n");
    aggregate::Engine e(*t);
    for (int64_t ts = 880; ts < 960; ++ts) e.add(0, "in.x", 1, ts, 918);
    EXPECT_EQ(e.counters().points, 40u);
    EXPECT_EQ(e.counters().late, 20u);
    EXPECT_EQ(e.counters().future, 20u);
    Collected out;
    e.flush(out.sink());
    EXPECT_EQ(out.lines, (std::vector<std::string> {"c.x 10 910\n", "c.x 10 920\n", "c.x 10 930\n", "c.x 10 940\n"}));
    // Run: interval 5, expire 20 at 1188: 1165..1194 (6 buckets); interval 10, expire 20: 1160..1199 (4).
    auto t2 = table_of(
        "aggregate ^a every 5 seconds expire after 20 seconds compute count write to a;\n"
        "aggregate ^b every 10 seconds expire after 20 seconds compute count write to b;\n");
    aggregate::Engine e2(*t2);
    for (int64_t ts = 1150; ts < 1220; ++ts) {
        e2.add(0, "a", 1, ts, 1188);
        e2.add(1, "b", 1, ts, 1188);
    }
    EXPECT_EQ(e2.counters().points, 30u + 40u);
}

TEST(AggregateEngine, BucketIsDueAtStartPlusExpirePlusAFuzzBelowTheIntervalAndLatePointsAreDropped) {
    auto t = table_of("aggregate ^in\\.(.*)$ every 10 seconds expire after 15 seconds compute sum write to s.\\1;\n");
    aggregate::Engine e(*t);
    Collected out;
    e.add(0, "in.x", 1, 905, 918);
    e.add(0, "in.x", 2, 915, 918);
    e.tick(914999, out.sink());
    EXPECT_TRUE(out.lines.empty()) << "not before start + expire";
    e.tick(925000, out.sink());
    EXPECT_EQ(out.lines, std::vector<std::string> {"s.x 1.000000 910\n"});
    e.add(0, "in.x", 4, 909, 926);
    EXPECT_EQ(e.counters().late, 1u) << "its bucket was emitted";
    e.add(0, "in.x", 8, 919, 926);
    e.tick(935000, out.sink());
    EXPECT_EQ(out.lines.back(), "s.x 10.000000 920\n");
    e.tick(10000000, out.sink());
    EXPECT_EQ(out.lines.size(), 2u) << "empty buckets are not emitted";
    EXPECT_EQ(e.counters().buckets_emitted, 2u);
    // After a long idle the window is where it would have moved to: a point for now is taken.
    e.add(0, "in.x", 1, 10000, 10000);
    EXPECT_EQ(e.counters().late, 1u);
    EXPECT_EQ(e.counters().future, 0u);
}

TEST(AggregateEngine, ValuesAndTimestampsAsCarbonCRelayPrintsThem) {
    auto t = table_of(
        "aggregate ^p\\.(.*)$ every 5 seconds expire after 6 seconds timestamp at middle of bucket\n"
        " compute percentile1 write to p1.\\1 compute percentile4 write to p4.\\1 compute percentile5 write to p5.\\1\n"
        " compute percentile10 write to p10.\\1 compute percentile11 write to p11.\\1 compute percentile25 write to p25.\\1\n"
        " compute percentile49 write to p49.\\1 compute percentile94 write to p94.\\1 compute percentile99 write to p99.\\1\n"
        " compute median write to med.\\1 compute sum write to sum.\\1 compute average write to avg.\\1\n"
        " compute count write to cnt.\\1 compute variance write to var.\\1 compute stddev write to sd.\\1\n"
        " compute min write to min.\\1 compute max write to max.\\1;\n"
        "aggregate ^q every 5 seconds expire after 6 seconds timestamp at start of bucket compute sum write to q;\n");
    aggregate::Engine e(*t);
    for (double v : {5, 1, 9, 3, 7, 2, 8, 4, 6, 10}) e.add(0, "p.ten", v, 1932, 1931);
    for (double v : {-3.5, 100.0, 0.25, 7.0, 7.0, -20.0, 1e6}) e.add(0, "p.seven", v, 1932, 1931);
    for (double v : {4, 1, 3, 2}) e.add(0, "p.four", v, 1932, 1931);
    e.add(0, "p.one", 42.125, 1932, 1931);
    e.add(1, "q", 1, 1932, 1931);
    std::map<std::string, std::string> got;
    e.flush([&](const aggregate::Result& r) {
        std::string line(r.line);
        got[std::string(r.name)] = line.substr(r.name.size() + 1, line.size() - r.name.size() - 2);
    });
    // What carbon-c-relay 3.7.3 sent for the same points (value, then the bucket's middle: 1930 + 5/2).
    const std::map<std::string, std::string> want = {{"avg.four", "2.500000 1932"},
                                                     {"avg.one", "42.125000 1932"},
                                                     {"avg.seven", "142870.107143 1932"},
                                                     {"avg.ten", "5.500000 1932"},
                                                     {"cnt.four", "4 1932"},
                                                     {"cnt.one", "1 1932"},
                                                     {"cnt.seven", "7 1932"},
                                                     {"cnt.ten", "10 1932"},
                                                     {"med.four", "2.000000 1932"},
                                                     {"med.one", "42.125000 1932"},
                                                     {"med.seven", "7.000000 1932"},
                                                     {"med.ten", "5.000000 1932"},
                                                     {"p1.four", "0.000000 1932"},
                                                     {"p1.one", "0.000000 1932"},
                                                     {"p1.seven", "0.000000 1932"},
                                                     {"p1.ten", "1.000000 1932"},
                                                     {"p10.four", "1.000000 1932"},
                                                     {"p10.one", "42.125000 1932"},
                                                     {"p10.seven", "-20.000000 1932"},
                                                     {"p10.ten", "1.000000 1932"},
                                                     {"p11.four", "1.000000 1932"},
                                                     {"p11.one", "42.125000 1932"},
                                                     {"p11.seven", "-20.000000 1932"},
                                                     {"p11.ten", "2.000000 1932"},
                                                     {"p25.four", "1.000000 1932"},
                                                     {"p25.one", "42.125000 1932"},
                                                     {"p25.seven", "-3.500000 1932"},
                                                     {"p25.ten", "3.000000 1932"},
                                                     {"p4.four", "1.000000 1932"},
                                                     {"p4.one", "0.000000 1932"},
                                                     {"p4.seven", "-20.000000 1932"},
                                                     {"p4.ten", "1.000000 1932"},
                                                     {"p49.four", "2.000000 1932"},
                                                     {"p49.one", "42.125000 1932"},
                                                     {"p49.seven", "7.000000 1932"},
                                                     {"p49.ten", "5.000000 1932"},
                                                     {"p5.four", "1.000000 1932"},
                                                     {"p5.one", "0.000000 1932"},
                                                     {"p5.seven", "-20.000000 1932"},
                                                     {"p5.ten", "1.000000 1932"},
                                                     {"p94.four", "4.000000 1932"},
                                                     {"p94.one", "42.125000 1932"},
                                                     {"p94.seven", "1000000.000000 1932"},
                                                     {"p94.ten", "10.000000 1932"},
                                                     {"p99.four", "4.000000 1932"},
                                                     {"p99.one", "42.125000 1932"},
                                                     {"p99.seven", "1000000.000000 1932"},
                                                     {"p99.ten", "10.000000 1932"},
                                                     {"sd.four", "1.118034 1932"},
                                                     {"sd.one", "0.000000 1932"},
                                                     {"sd.seven", "349921.815330 1932"},
                                                     {"sd.ten", "2.872281 1932"},
                                                     {"sum.four", "10.000000 1932"},
                                                     {"sum.one", "42.125000 1932"},
                                                     {"sum.seven", "1000090.750000 1932"},
                                                     {"sum.ten", "55.000000 1932"},
                                                     {"var.four", "1.250000 1932"},
                                                     {"var.one", "0.000000 1932"},
                                                     {"var.seven", "122445276843.604584 1932"},
                                                     {"var.ten", "8.250000 1932"},
                                                     {"min.ten", "1.000000 1932"},
                                                     {"max.seven", "1000000.000000 1932"},
                                                     {"q", "1.000000 1930"}};
    for (const auto& [name, value] : want) EXPECT_EQ(got[name], value) << name;
}

TEST(AggregateEngine, PercentileRankIsComputedInCarbonCRelaysOrder) {
    std::vector<double> v;
    for (int i = 1; i <= 18; ++i) v.push_back(i);
    EXPECT_EQ(aggregate::percentile_of(v.data(), 18, 95), 17) << "0.95 * 18 + 0.9 is just below 18 in doubles";
    EXPECT_EQ(aggregate::percentile_of(v.data(), 10, 1), 1);
    EXPECT_EQ(aggregate::percentile_of(v.data(), 1, 5), 0) << "rank 0 gives 0";
    EXPECT_EQ(aggregate::percentile_of(v.data(), 1, 10), 1);
}

TEST(AggregateEngine, MedianSampleIsBoundedAndPointsDoNotAllocate) {
    auto t = table_of(
        "aggregate ^in\\.(.*)$ every 10 seconds expire after 15 seconds compute median write to m.\\1 "
        "compute sum write to s.\\1;\n");
    aggregate::Limits limits;
    limits.max_values_per_bucket = 100;
    aggregate::Engine e(*t, limits);
    for (int i = 0; i < 1000; ++i) e.add(0, "in.x", i, 1005, 1010);  // creates the series, fills the sample
    size_t before = allocation_count();
    for (int i = 0; i < 100000; ++i) e.add(0, "in.x", i % 1000, 1005, 1010);
    EXPECT_EQ(allocation_count(), before) << "no allocation per point once a series exists";
    EXPECT_EQ(e.counters().values_sampled, 100900u);
    Collected out;
    e.flush(out.sink());
    ASSERT_EQ(out.lines.size(), 2u);
    EXPECT_EQ(out.lines[1], "s.x 50449500.000000 1010\n") << "sum counts every point";
    // The emitted bucket's slot keeps its storage for the next bucket that lands in it.
    before = allocation_count();
    for (int i = 0; i < 100; ++i) e.add(0, "in.x", i, 1005, 1010);
    EXPECT_EQ(allocation_count(), before);
}

TEST(AggregateEngine, SeriesBeyondTheLimitAreCountedNotCreated) {
    auto t = table_of("aggregate ^in\\.(.*)$ every 10 seconds expire after 15 seconds compute sum write to s.\\1;\n");
    aggregate::Limits limits;
    limits.max_series = 3;
    aggregate::Engine e(*t, limits);
    for (int i = 0; i < 5; ++i) e.add(0, "in." + std::to_string(i), 1, 1005, 1010);
    EXPECT_EQ(e.series_count(), 3u);
    EXPECT_EQ(e.counters().series_full, 2u);
}
