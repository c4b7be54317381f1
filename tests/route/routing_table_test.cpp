// The compiled routing table: rule order, rewrites feeding later rules, stop, blackhole, validate, cluster
// member selection with members down, one slot per host:port, the implicit table, and no allocation per lookup.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "route/routing_table.hpp"
#include "table_of.hpp"

using namespace polymur::route;

size_t allocation_count();  // allocation_counter.cpp

namespace {

// "name>address" for every send, in order.
std::vector<std::string> sends(const RoutingTable& table, std::string_view name, std::string_view data = "",
                               const bool* up = nullptr) {
    auto result = std::make_unique<RouteResult>();
    table.route(name, data, up, *result);
    std::vector<std::string> out;
    for (size_t i = 0; i < result->send_count; ++i)
        out.push_back(std::string(result->name_of(result->sends[i])) + ">" + table.slot_address(result->sends[i].slot));
    return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST(RoutingTable, RulesApplyInFileOrderWithRewritesStopAndCopies) {
    auto t = table_of(
        "cluster a forward 10.0.0.1;\ncluster b forward 10.0.0.2;\n"
        "match ^x send to a;\n"
        "rewrite ^x\\.(.*)$ into y.\\1;\n"
        "match ^y send to a b;\n"
        "match ^y\\.stop send to b stop;\n"
        "match * send to a;\n"
        "match ^z send to blackhole;\n"
        "match * send to b;\n");
    EXPECT_EQ(
        sends(*t, "x.1"),
        (V {"x.1>10.0.0.1:2003", "y.1>10.0.0.1:2003", "y.1>10.0.0.2:2003", "y.1>10.0.0.1:2003", "y.1>10.0.0.2:2003"}));
    EXPECT_EQ(sends(*t, "x.stop"),
              (V {"x.stop>10.0.0.1:2003", "y.stop>10.0.0.1:2003", "y.stop>10.0.0.2:2003", "y.stop>10.0.0.2:2003"}));
    EXPECT_EQ(sends(*t, "z.1"), (V {"z.1>10.0.0.1:2003"}));
    auto result = std::make_unique<RouteResult>();
    t->route("z.1", "", nullptr, *result);
    EXPECT_TRUE(result->blackholed);
    EXPECT_EQ(sends(*t, "q"), (V {"q>10.0.0.1:2003", "q>10.0.0.2:2003"}));
}

TEST(RoutingTable, OneSlotPerHostAndPort) {
    auto t = table_of(
        "cluster a forward 10.0.0.1 10.0.0.2:2004;\ncluster b carbon_ch 10.0.0.1:2003 10.0.0.3;\n"
        "match * send to a b;\n");
    EXPECT_EQ(t->slot_count(), 3u);
    auto result = std::make_unique<RouteResult>();
    t->route("m", "", nullptr, *result);
    ASSERT_EQ(result->send_count, 3u);
    EXPECT_EQ(result->sends[0].slot, 0);
}

TEST(RoutingTable, ValidateLogsOrDrops) {
    auto t = table_of(
        "cluster a forward 10.0.0.1;\n"
        "match ^l validate \"^[0-9]+ \" else log send to a;\n"
        "match ^d validate \"^[0-9]+ \" else drop;\n"
        "match * send to a;\n");
    EXPECT_EQ(sends(*t, "l", "12 1700000000"), (V {"l>10.0.0.1:2003", "l>10.0.0.1:2003"}));
    auto result = std::make_unique<RouteResult>();
    t->route("l", "x 1700000000", nullptr, *result);
    EXPECT_TRUE(result->logged);
    EXPECT_EQ(result->send_count, 1u) << "log skips the rule's own clusters, later rules still apply";
    t->route("d", "x 1700000000", nullptr, *result);
    EXPECT_TRUE(result->dropped);
    EXPECT_EQ(result->send_count, 0u);
    EXPECT_EQ(sends(*t, "d", "1 1700000000"), (V {"d>10.0.0.1:2003"}));
}

TEST(RoutingTable, FailoverAnyOfAndDynamicRouteAroundDownMembers) {
    auto t = table_of(
        "cluster f failover 10.0.0.1 10.0.0.2 10.0.0.3;\n"
        "cluster y any_of 10.1.0.1 10.1.0.2 10.1.0.3;\n"
        "cluster d carbon_ch replication 2 dynamic 10.2.0.1 10.2.0.2 10.2.0.3;\n"
        "cluster s carbon_ch replication 2 10.3.0.1 10.3.0.2 10.3.0.3;\n"
        "match ^f send to f; match ^y send to y; match ^d send to d; match ^s send to s;\n");
    bool up[12];
    std::fill(std::begin(up), std::end(up), true);
    EXPECT_EQ(sends(*t, "f", "", up), (V {"f>10.0.0.1:2003"}));
    up[0] = false;
    EXPECT_EQ(sends(*t, "f", "", up), (V {"f>10.0.0.2:2003"}));
    up[1] = false;
    EXPECT_EQ(sends(*t, "f", "", up), (V {"f>10.0.0.3:2003"}));
    up[2] = false;
    EXPECT_EQ(sends(*t, "f", "", up), (V {"f>10.0.0.1:2003"})) << "none up: the first member keeps it queued";

    // any_of: each name to one member (FNV-1a modulo the member count); a down member's names go elsewhere.
    std::set<std::string> used;
    for (int i = 0; i < 100; ++i) {
        V v = sends(*t, "y" + std::to_string(i), "", up);
        ASSERT_EQ(v.size(), 1u);
        used.insert(v[0].substr(v[0].find('>')));
        up[3] = false;
        V w = sends(*t, "y" + std::to_string(i), "", up);
        up[3] = true;
        EXPECT_NE(w[0].substr(w[0].find('>')), ">10.1.0.1:2003");
        if (v[0].find(">10.1.0.1:2003") == std::string::npos) {
            EXPECT_EQ(v, w) << "names of members that are up stay where they are";
        }
    }
    EXPECT_EQ(used.size(), 3u);

    // dynamic hash cluster: a down member is replaced by the next one on the ring; a static one keeps it.
    for (int i = 0; i < 50; ++i) {
        std::string name = "d" + std::to_string(i);
        V all = sends(*t, name, "", up);
        ASSERT_EQ(all.size(), 2u);
        size_t down_slot = 0;
        for (size_t s = 0; s < t->slot_count(); ++s)
            if (all[0].substr(all[0].find('>') + 1) == t->slot_address(s)) down_slot = s;
        up[down_slot] = false;
        V moved = sends(*t, name, "", up);
        up[down_slot] = true;
        ASSERT_EQ(moved.size(), 2u);
        EXPECT_EQ(moved[0], all[1]);
        EXPECT_NE(moved[1], all[0]);
        std::string sname = "s" + std::to_string(i);
        V fixed = sends(*t, sname, "", up);
        for (size_t s = 0; s < t->slot_count(); ++s)
            if (fixed[0].substr(fixed[0].find('>') + 1) == t->slot_address(s)) down_slot = s;
        up[down_slot] = false;
        EXPECT_EQ(sends(*t, sname, "", up), fixed);
        up[down_slot] = true;
    }
}

TEST(RoutingTable, ImplicitTableIsTodaysRouting) {
    std::vector<Destination> destinations(3);
    std::string error;
    const char* texts[] = {"10.0.0.1:2003:a", "10.0.0.2:2003:b", "10.0.0.3:2003"};
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(parse_destination(texts[i], destinations[i], error)) << error;
    auto ring = HashRing::build(HashType::carbon_ch, destinations, error);
    auto hashed = RoutingTable::build_implicit(false, HashType::carbon_ch, destinations, 2, true, error);
    ASSERT_TRUE(hashed) << error;
    auto result = std::make_unique<RouteResult>();
    for (int i = 0; i < 200; ++i) {
        std::string name = "metric." + std::to_string(i);
        uint16_t want[2];
        size_t n = ring->lookup(name, 2, true, want);
        hashed->route(name, "", nullptr, *result);
        ASSERT_EQ(result->send_count, n);
        for (size_t k = 0; k < n; ++k) EXPECT_EQ(hashed->slot_address(result->sends[k].slot), texts[want[k]]);
    }
    auto broadcast = RoutingTable::build_implicit(true, HashType::carbon_ch, destinations, 1, true, error);
    broadcast->route("x", "", nullptr, *result);
    EXPECT_EQ(result->send_count, 3u);
    auto none = RoutingTable::build_implicit(true, HashType::carbon_ch, {}, 1, true, error);
    none->route("x", "", nullptr, *result);
    EXPECT_EQ(result->send_count, 0u);
}

TEST(RoutingTable, ReplacementTransforms) {
    std::string_view groups[] = {"whole", "Ab.Cd", "", "x"};
    char out[256];
    auto expand = [&](std::string_view r) {
        size_t used = 0;
        EXPECT_TRUE(expand_replacement(r, groups, 4, out, sizeof out, used));
        return std::string(out, used);
    };
    EXPECT_EQ(expand("<\\1>"), "<Ab.Cd>");
    EXPECT_EQ(expand("\\_1"), "ab.cd");
    EXPECT_EQ(expand("\\^1"), "AB.CD");
    EXPECT_EQ(expand("\\.1"), "Ab_Cd");
    EXPECT_EQ(expand("\\_.1"), "ab_cd");
    EXPECT_EQ(expand("\\^.1"), "AB_CD");
    EXPECT_EQ(expand("\\..1"), "Ab_Cd");
    EXPECT_EQ(expand("\\0|\\2|\\9|\\10"), "|||");
    EXPECT_EQ(expand("\\\\1 \\x \\_x \\._1 \\^_1 \\"), "Ab.Cd x x _1 _1 ");
    size_t used = 0;
    EXPECT_FALSE(expand_replacement("\\1\\1", groups, 4, out, 7, used)) << "a replacement that does not fit";
}

TEST(RoutingTable, PosixBracketsAndRefusedSyntax) {
    std::string re2, error;
    ASSERT_TRUE(posix_ere_to_re2("[\\.]x", re2, error));
    EXPECT_EQ(re2, "[\\\\.]x");
    ASSERT_TRUE(posix_ere_to_re2("[]a][^]b][[:digit:]]\\d", re2, error));
    EXPECT_EQ(re2, "[\\]a][^\\]b][[:digit:]]d");
    EXPECT_FALSE(posix_ere_to_re2("(a)\\1", re2, error));
    EXPECT_NE(error.find("back-references"), std::string::npos);
    EXPECT_FALSE(posix_ere_to_re2("\\<word", re2, error));
    EXPECT_FALSE(posix_ere_to_re2("[abc", re2, error));

    rules::RulesConfig config;
    ASSERT_TRUE(rules::parse_rules_text("cluster a forward h;\n\nmatch (a send to a;", "t.conf", config, error));
    EXPECT_FALSE(RoutingTable::build(config, error));
    EXPECT_EQ(error.rfind("t.conf:3: bad regular expression '(a': ", 0), 0u) << error;
}

TEST(RoutingTable, LookupsDoNotAllocate) {
    auto t = table_of(
        "cluster a carbon_ch replication 2 10.0.0.1 10.0.0.2 10.0.0.3;\n"
        "cluster b fnv1a_ch 10.1.0.1 10.1.0.2;\ncluster j jump_fnv1a_ch 10.2.0.1 10.2.0.2;\n"
        "cluster y any_of 10.3.0.1 10.3.0.2;\ncluster f failover 10.4.0.1 10.4.0.2;\n"
        "rewrite ^legacy\\.([a-z]+)\\.(.*)$ into apps.\\_1.\\2;\n"
        "match ^servers\\. send to a;\n"
        "match ^apps\\.[a-z]+\\.(requests|errors)$ send to b;\n"
        "match \\.latency\\. send to j;\n"
        "match ^tmp send to blackhole;\n"
        "match * validate \"^[0-9.]+ [0-9]+$\" else log send to y f;\n");
    auto result = std::make_unique<RouteResult>();
    const char* names[] = {"servers.web1.cpu", "apps.web.requests", "x.latency.p99",       "tmp.x",
                           "other.name",       "apps.web.other",    "legacy.web.requests", "legacy.mail.x.errors"};
    bool up[16] = {true, false, true, true, true, true, true, true, true, false, true, true, true, true, true, true};
    // RE2's DFA allocates the first time it meets a state; warm it with the same inputs.
    for (int warm = 0; warm < 2; ++warm)
        for (const char* name : names) {
            t->route(name, "1 1700000000", up, *result);
            t->route(name, "x y", up, *result);
        }
    const size_t probe = allocation_count();
    auto counted = std::make_unique<int>(1);
    ASSERT_GT(allocation_count(), probe) << "the allocation counter is not in effect";
    const size_t before = allocation_count();
    for (int i = 0; i < 1000; ++i)
        for (const char* name : names) t->route(name, i % 2 ? "1 1700000000" : "x y", up, *result);
    EXPECT_EQ(allocation_count(), before);
}

// A down member's queued lines: within its failover-capable clusters, to the members that did not have a copy.
TEST(RoutingTable, FailoverMovesOnlyWithinTheClustersThatPlacedTheLine) {
    auto t = table_of(
        "cluster f failover 10.0.0.1 10.0.0.2 10.0.0.3;\n"
        "cluster h carbon_ch replication 2 dynamic 10.0.1.1=a 10.0.1.2=b 10.0.1.3=c;\n"
        "cluster p carbon_ch 10.0.2.1=a 10.0.2.2=b;\n"
        "match ^f send to f stop;\nmatch ^h send to h stop;\nmatch * send to p;\n");
    ASSERT_EQ(t->slot_count(), 8u);
    bool up[8];
    std::fill(up, up + 8, true);
    uint16_t out[8];
    // failover: the first member down sends to the second; with the second down too, to the third.
    up[0] = false;
    ASSERT_EQ(t->failover("f.x", 0, up, out, 8), 1u);
    EXPECT_EQ(t->slot_address(out[0]), "10.0.0.2:2003");
    up[1] = false;
    ASSERT_EQ(t->failover("f.x", 1, up, out, 8), 1u);
    EXPECT_EQ(t->slot_address(out[0]), "10.0.0.3:2003");
    // every other member down: the line waits.
    up[2] = false;
    EXPECT_EQ(t->failover("f.x", 0, up, out, 8), 0u);
    std::fill(up, up + 8, true);
    EXPECT_TRUE(t->slot_fails_over(0));
    EXPECT_TRUE(t->slot_fails_over(3));
    EXPECT_FALSE(t->slot_fails_over(6));  // plain carbon_ch holds
    EXPECT_EQ(t->failover("p.x", 6, up, out, 8), 0u);
    // dynamic, replication 2: a name's two members; the down one's line goes to the third, not to the replica.
    for (int n = 0; n < 50; ++n) {
        const std::string name = "h.metric." + std::to_string(n);
        auto placed = sends(*t, name);
        ASSERT_EQ(placed.size(), 2u);
        std::string first = placed[0].substr(placed[0].find('>') + 1),
                    second = placed[1].substr(placed[1].find('>') + 1);
        long down = t->find_slot(first);
        ASSERT_GE(down, 0);
        up[down] = false;
        ASSERT_EQ(t->failover(name, size_t(down), up, out, 8), 1u) << name;
        const std::string moved = t->slot_address(out[0]);
        EXPECT_NE(moved, first);
        EXPECT_NE(moved, second);
        EXPECT_EQ(moved.rfind("10.0.1.", 0), 0u);
        up[down] = true;
    }
}

TEST(RoutingTable, IdenticalAggregateRulesHaveTheirOwnFingerprints) {
    // Two identical rules are two rules (each computes, each emits): the second is numbered after the first.
    const std::string rule = "aggregate ^x every 5 seconds expire after 6 seconds compute min write to z.min;\n";
    auto t = table_of("cluster a forward 10.0.0.1;\n" + rule + "rewrite ^y into x;\n" + rule + rule +
                      "aggregate ^x every 5 seconds expire after 6 seconds compute max write to z.min;\n");
    ASSERT_EQ(t->aggregate_count(), 4u);
    EXPECT_EQ(t->aggregate_fingerprint(0), rules::aggregate_fingerprint(t->aggregate(0)));
    EXPECT_NE(t->aggregate_fingerprint(0), t->aggregate_fingerprint(1));
    EXPECT_NE(t->aggregate_fingerprint(1), t->aggregate_fingerprint(2));
    EXPECT_NE(t->aggregate_fingerprint(0), t->aggregate_fingerprint(2));
    EXPECT_NE(t->aggregate_fingerprint(3), t->aggregate_fingerprint(0));
    // The same file again: the same numbers.
    auto again = table_of("cluster a forward 10.0.0.1;\n" + rule + "rewrite ^y into x;\n" + rule + rule +
                          "aggregate ^x every 5 seconds expire after 6 seconds compute max write to z.min;\n");
    for (size_t a = 0; a < 4; ++a) EXPECT_EQ(again->aggregate_fingerprint(a), t->aggregate_fingerprint(a));
}

TEST(RoutingTable, AggregatesAreFedInRuleOrderWithTheNameTheySaw) {
    auto t = table_of(
        "cluster a forward 10.0.0.1;\ncluster h carbon_ch 10.0.1.1 10.0.1.2 10.0.1.3;\n"
        "aggregate ^x\\.([^.]+)\\.(.*)$ every 10 seconds expire after 20 seconds\n"
        "  compute sum write to sum.\\1.\\2 compute count write to count.\\^1 send to h;\n"
        "rewrite ^x\\.(.*)$ into y.\\1;\n"
        "aggregate ^y\\. every 5 seconds expire after 6 seconds compute max write to y.max send to a stop;\n"
        "match * send to a;\n"
        "aggregate ^z every 5 seconds expire after 6 seconds compute min write to z.min;\n");
    ASSERT_EQ(t->aggregate_count(), 3u);
    auto result = std::make_unique<RouteResult>();
    t->route("x.web.cpu", "1 2", nullptr, *result);
    ASSERT_EQ(result->feed_count, 2u);
    EXPECT_EQ(result->feeds[0].aggregate, 0);
    EXPECT_EQ(result->name_of(result->feeds[0]), "x.web.cpu");
    EXPECT_EQ(result->feeds[1].aggregate, 1);
    EXPECT_EQ(result->name_of(result->feeds[1]), "y.web.cpu");
    EXPECT_EQ(result->send_count, 0u) << "the second aggregate stops the lookup";
    t->route("z.1", "1 2", nullptr, *result);
    EXPECT_EQ(result->send_count, 1u) << "match * comes before the aggregate of z";
    ASSERT_EQ(result->feed_count, 1u);
    EXPECT_EQ(result->feeds[0].aggregate, 2);
    t->route("q", "1 2", nullptr, *result);
    EXPECT_EQ(result->feed_count, 0u);

    char out[256];
    size_t used = 0;
    ASSERT_TRUE(t->aggregate_output_name(0, 0, "x.web.cpu", out, sizeof out, used));
    EXPECT_EQ(std::string(out, used), "sum.web.cpu");
    ASSERT_TRUE(t->aggregate_output_name(0, 1, "x.web.cpu", out, sizeof out, used));
    EXPECT_EQ(std::string(out, used), "count.WEB");
    EXPECT_FALSE(t->aggregate_output_name(0, 0, "nomatch", out, sizeof out, used));
    EXPECT_FALSE(t->aggregate_output_name(0, 0, "x.web.cpu", out, 4, used)) << "does not fit";
    ASSERT_TRUE(t->aggregate_output_name(1, 0, "y.web.cpu", out, sizeof out, used));
    EXPECT_EQ(std::string(out, used), "y.max") << "a plain string's metric is written as it is";
    auto partial =
        table_of("aggregate ^c\\.(w)\\. every 10 seconds expire after 15 seconds compute sum write to C.\\1;\n");
    ASSERT_TRUE(partial->aggregate_output_name(0, 0, "c.w.89", out, sizeof out, used));
    EXPECT_EQ(std::string(out, used), "C.w89") << "a regular expression's match is replaced in place";

    // With send to: that rule's clusters; without: the whole table, as a metric from outside.
    t->route_aggregate_result(0, "sum.web.cpu", nullptr, *result);
    ASSERT_EQ(result->send_count, 1u);
    EXPECT_EQ(result->feed_count, 0u);
    EXPECT_EQ(t->slot_address(result->sends[0].slot).rfind("10.0.1.", 0), 0u);
    t->route_aggregate_result(1, "y.max", nullptr, *result);
    ASSERT_EQ(result->send_count, 1u);
    EXPECT_EQ(t->slot_address(result->sends[0].slot), "10.0.0.1:2003");
    t->route_aggregate_result(2, "x.a.b", nullptr, *result);
    EXPECT_EQ(result->feed_count, 2u) << "a result without send to feeds aggregates like any metric";
}

// Patterns that end with literal characters and `$` are passed over without running the expression when the name
// does not end with them; the answers must be those of the expression itself.
TEST(RoutingTable, LiteralEndBeforeDollarFiltersWithoutChangingAnswers) {
    auto t = table_of(
        "cluster a forward 10.0.0.1;\n"
        "match ^a\\.(b|c)\\.x$ ^q.*\\.m1$ send to a;\n"
        "match ab*$ x\\.{2}$ [.]z$ (k\\.)+$ y\\$ \\.m(1|2)$ send to a;\n");
    const std::pair<const char*, bool> cases[] = {
        {"a.b.x", true},    {"a.c.x", true}, {"a.b.xx", false}, {"a.b.y.x", false}, {"q.z.m1", true},
        {"q.z.m12", false}, {"q.m1", true},  {"q.m", false},    {"xa", true},       {"xabbb", true},
        {"xabc", false},    {"x..", true},   {"x.", false},     {"w.z", true},      {"wz", false},
        {"k.k.", true},     {"y$", true},    {"y", false},      {"n.m2", true},     {"n.m3", false},
    };
    for (const auto& [name, routed] : cases) EXPECT_EQ(!sends(*t, name).empty(), routed) << name;
}

// The listener skips route() when the table says every name goes to the same slots: it must say so only when
// route() would indeed answer those slots, unchanged names, whatever the name, data or `up`.
TEST(RoutingTable, SendsEveryNameToOnlyWhenRouteAlwaysAnswersThat) {
    const std::vector<std::string> yes = {
        "cluster a forward h1:1 h2:2;\nmatch * send to a;\n",
        "cluster a forward h1:1;\ncluster b forward h2:2 h1:1;\nmatch * send to a b;\n",
        "cluster a forward h1:1;\nmatch ^x * send to a;\n",  // any expression `*` matches everything
    };
    const std::vector<std::string> no = {
        "cluster a forward h1:1;\nmatch ^x send to a;\n",
        "cluster a carbon_ch h1:1 h2:2;\nmatch * send to a;\n",
        "cluster a any_of h1:1 h2:2;\nmatch * send to a;\n",
        "cluster a forward h1:1;\nmatch * validate ^[0-9] else drop send to a;\n",
        "cluster a forward h1:1;\nrewrite ^(.*)$ into x.\\1;\nmatch * send to a;\n",
        "cluster a forward h1:1;\nmatch * send to a;\nmatch * send to a;\n",
        "match * send to blackhole;\n",
        "cluster a forward h1:1;\naggregate ^x every 10 seconds expire after 20 seconds compute sum write to y;\n"
        "match * send to a;\n",
    };
    const bool up[] = {false, false};
    for (const std::string& text : yes) {
        auto table = table_of(text);
        ASSERT_TRUE(table) << text;
        std::vector<uint16_t> slots;
        ASSERT_TRUE(table->sends_every_name_to(slots)) << text;
        for (std::string_view name : {"a.b", "x.y", "xx"}) {
            V expected;
            for (uint16_t slot : slots) expected.push_back(std::string(name) + ">" + table->slot_address(slot));
            EXPECT_EQ(sends(*table, name, "1 2"), expected) << text;
            EXPECT_EQ(sends(*table, name, "zz", up), expected) << text;
        }
    }
    for (const std::string& text : no) {
        std::vector<uint16_t> slots = {1};
        auto table = table_of(text);
        ASSERT_TRUE(table) << text;
        EXPECT_FALSE(table->sends_every_name_to(slots)) << text;
        EXPECT_TRUE(slots.empty()) << text;
    }
    std::vector<Destination> destinations(2);
    std::string error;
    ASSERT_TRUE(parse_destination("127.0.0.1:1:a", destinations[0], error));
    ASSERT_TRUE(parse_destination("127.0.0.1:2:b", destinations[1], error));
    std::vector<uint16_t> slots;
    auto broadcast = RoutingTable::build_implicit(true, HashType::carbon_ch, destinations, 1, true, error);
    ASSERT_TRUE(broadcast) << error;
    EXPECT_TRUE(broadcast->sends_every_name_to(slots));
    EXPECT_EQ(slots, (std::vector<uint16_t> {0, 1}));
    auto hashed = RoutingTable::build_implicit(false, HashType::carbon_ch, destinations, 1, true, error);
    ASSERT_TRUE(hashed) << error;
    EXPECT_FALSE(hashed->sends_every_name_to(slots));
}

// The hash-route shortcut: where routes_by_one_cluster() says yes, one_cluster_slots() gives route()'s sends for
// every name, data and set of destinations up (dynamic, any_of and failover clusters route around the down ones).
TEST(RoutingTable, OneClusterSlotsAreRoutesAnswer) {
    const std::vector<std::string> yes = {
        "cluster a carbon_ch h1:1 h2:2 h3:3;\nmatch * send to a;\n",
        "cluster a carbon_ch replication 2 dynamic h1:1 h2:2 h3:3;\nmatch * send to a;\n",
        "cluster a fnv1a_ch replication 3 h1:1 h2:2 h3:3 h4:4;\nmatch * send to a stop;\n",
        "cluster a jump_fnv1a_ch h1:1 h2:2;\nmatch ^x * send to a;\n",
        "cluster a any_of h1:1 h2:2 h3:3;\nmatch * send to a;\n",
        "cluster a failover h1:1 h2:2;\nmatch * send to a;\n",
        "cluster a forward h1:1 h2:2;\nmatch * send to a;\n",
        "cluster a carbon_ch h1:1;\nmatch * send to a;\n",  // a one-node ring names the node twice: one copy
    };
    const std::vector<std::string> no = {
        "cluster a carbon_ch h1:1 h2:2;\nmatch ^x send to a;\n",
        "cluster a carbon_ch h1:1;\ncluster b carbon_ch h2:2;\nmatch * send to a b;\n",
        "cluster a carbon_ch h1:1 h2:2;\nmatch * validate ^[0-9] else drop send to a;\n",
        "cluster a carbon_ch h1:1 h2:2;\nrewrite ^(.*)$ into x.\\1;\nmatch * send to a;\n",
        "cluster a carbon_ch h1:1 h2:2;\nmatch * send to a;\nmatch * send to a;\n",
        "match * send to blackhole;\n",
        "cluster a carbon_ch h1:1;\naggregate ^x every 10 seconds expire after 20 seconds compute sum write to y;\n"
        "match * send to a;\n",
    };
    const bool all_down[] = {false, false, false, false}, first_down[] = {false, true, true, true},
               second_down[] = {true, false, true, true};
    for (const std::string& text : yes) {
        auto table = table_of(text);
        ASSERT_TRUE(table) << text;
        ASSERT_TRUE(table->routes_by_one_cluster()) << text;
        for (const bool* up : {static_cast<const bool*>(nullptr), all_down, first_down, second_down})
            for (int i = 0; i < 300; ++i) {
                const std::string name = "host" + std::to_string(i) + ".cpu-" + std::to_string(i % 7) + ".user";
                uint16_t slots[RouteResult::kMaxSends];
                const size_t n = table->one_cluster_slots(name, up, slots);
                V expected;
                for (size_t k = 0; k < n; ++k) expected.push_back(name + ">" + table->slot_address(slots[k]));
                EXPECT_EQ(sends(*table, name, "1 2", up), expected) << text << name;
            }
    }
    for (const std::string& text : no) {
        auto table = table_of(text);
        ASSERT_TRUE(table) << text;
        EXPECT_FALSE(table->routes_by_one_cluster()) << text;
    }
}
