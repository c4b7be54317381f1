// The aggregator's state file and queued records (aggregate/state_file.hpp): what is written reads back the same,
// the version before fingerprints still reads, and damage is an error, not a guess.
#include "aggregate/state_file.hpp"

#include <gtest/gtest.h>

using namespace polymur::aggregate;

namespace {

SavedState sample() {
    SavedState s;
    s.emitted_through_ms = 1700000123456;
    s.fingerprints = {0x0123456789abcdefull, 0, ~0ull};
    RecordedResults a;
    a.target = "127.0.0.1:2003";
    a.start = 4096;
    a.lines = 2;
    a.bytes = "agg.a 1.000000 1700000120\nagg.b 2.000000 1700000120\n";
    RecordedResults own;  // the aggregator's own queue: no target
    own.start = 7;
    own.lines = 1;
    own.bytes = rule_field(0x42) + "1700000123 agg.a 1.000000 1700000120\n";
    s.pending = {a, own};
    return s;
}

}  // namespace

TEST(AggregatorState, WhatIsWrittenReadsBackTheSame) {
    const SavedState s = sample();
    SavedState back;
    std::string error;
    ASSERT_TRUE(parse_state(format_state(s), back, error)) << error;
    EXPECT_EQ(back.version, kStateVersion);
    EXPECT_EQ(back.emitted_through_ms, s.emitted_through_ms);
    EXPECT_EQ(back.fingerprints, s.fingerprints);
    ASSERT_EQ(back.pending.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(back.pending[i].target, s.pending[i].target);
        EXPECT_EQ(back.pending[i].start, s.pending[i].start);
        EXPECT_EQ(back.pending[i].lines, s.pending[i].lines);
        EXPECT_EQ(back.pending[i].bytes, s.pending[i].bytes);
    }
    SavedState first_start;  // never emitted: the lowest time
    ASSERT_TRUE(parse_state(format_state(SavedState()), first_start, error)) << error;
    EXPECT_EQ(first_start.emitted_through_ms, INT64_MIN);
}

TEST(AggregatorState, VersionOneReadsWithoutFingerprints) {
    // As the polymur before fingerprints wrote it.
    const std::string v1 =
        "polymur-aggregator-state 1\nemitted_through_ms 1700000123000\npending 1\n"
        "14 127.0.0.1:2003 10 1 25\nagg.a 1.000000 170000012\n";
    SavedState s;
    std::string error;
    ASSERT_TRUE(parse_state(v1, s, error)) << error;
    EXPECT_EQ(s.version, 1u);
    EXPECT_TRUE(s.fingerprints.empty());
    EXPECT_EQ(s.emitted_through_ms, 1700000123000);
    ASSERT_EQ(s.pending.size(), 1u);
    EXPECT_EQ(s.pending[0].target, "127.0.0.1:2003");
    EXPECT_EQ(s.pending[0].bytes, "agg.a 1.000000 170000012\n");
}

TEST(AggregatorState, DamageIsAnErrorThatSaysWhat) {
    const std::string good = format_state(sample());
    SavedState s;
    std::string error;
    for (size_t cut = 0; cut < good.size(); ++cut) {
        EXPECT_FALSE(parse_state(good.substr(0, cut), s, error)) << cut;
        EXPECT_FALSE(error.empty());
    }
    EXPECT_FALSE(parse_state(good + "x", s, error));
    EXPECT_EQ(error, "bytes after the end");
    EXPECT_FALSE(parse_state("polymur-aggregator-state 3\n", s, error));  // a later polymur's
    EXPECT_EQ(error, "not a state file of this polymur");
    EXPECT_FALSE(parse_state("polymur-aggregator-state 2\nrules 1\nxyz\n", s, error));
    EXPECT_FALSE(parse_state("polymur-aggregator-state 2\nrules 99999999999\n", s, error));
    std::string bad_hex = good;
    bad_hex[good.find("0123456789abcdef")] = 'g';
    EXPECT_FALSE(parse_state(bad_hex, s, error));
}

TEST(AggregatorState, QueuedPointsNameTheirRuleByFingerprint) {
    QueuedPoint p;
    const std::string line = rule_field(0xfedcba9876543210ull) + "1700000100 a.b.c 1.5 1700000099";
    ASSERT_EQ(rule_field(1).size(), kRuleFieldSize);
    ASSERT_TRUE(parse_queued_point(line, p));
    EXPECT_FALSE(p.by_index);
    EXPECT_EQ(p.fingerprint, 0xfedcba9876543210ull);
    EXPECT_EQ(p.received, 1700000100);
    EXPECT_EQ(p.name, "a.b.c");
    EXPECT_EQ(p.value, 1.5);
    EXPECT_EQ(p.timestamp, 1700000099);
    // A polymur before fingerprints wrote the rule's index.
    ASSERT_TRUE(parse_queued_point("3 1700000100 a.b.c 1 1700000099.7", p));
    EXPECT_TRUE(p.by_index);
    EXPECT_EQ(p.index, 3u);
    EXPECT_EQ(p.timestamp, 1700000099);
    for (const char* bad : {"", "0123456789abcdeg 1 a 1 1", "0123456789abcdef 1 a 1", "x 1 a 1 1",
                            "0123456789abcdef 1 a one 1", "0123456789abcdef 1 a 1 1e300"})
        EXPECT_FALSE(parse_queued_point(bad, p)) << bad;
}
