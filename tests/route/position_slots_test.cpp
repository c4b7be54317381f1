// The destination slots per carbon_ch position (route/position_slots.hpp) answer as the table does, for the
// tables they apply to, and never outlive the table they were asked of: a ring changed by runtime membership
// (putdest, deldest) or replaced by another table, and more distinct answers than it keeps.
#include "route/position_slots.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "route/hash_ring.hpp"
#include "table_of.hpp"

// Defined in allocation_counter.cpp, which replaces global operator new for this binary.
size_t allocation_count();

namespace polymur::route {
namespace {

// Names of every length that matters to MD5 (one block below 56 bytes, two or more above), random bytes
// included, and collectd-like ones.
std::vector<std::string> test_names() {
    std::mt19937 random(11);
    std::vector<std::string> names;
    for (size_t size : {0,  1,  3,  4,  7,  8,  9,  15, 16,  17,  31,  32,  54,  55,
                        56, 57, 59, 60, 61, 63, 64, 65, 119, 120, 200, 255, 256, 300}) {
        for (int copy = 0; copy < 3; ++copy) {
            std::string name(size, '\0');
            for (char& c : name) c = copy == 0 ? static_cast<char>(random()) : static_cast<char>('a' + random() % 26);
            names.push_back(name);
        }
    }
    for (int i = 0; i < 3000; ++i)
        names.push_back("collectd.host" + std::to_string(i / 64) + ".cpu-" + std::to_string(i / 4 % 16) + ".cpu-" +
                        std::to_string(i % 4));
    return names;
}

std::vector<uint16_t> uncached_slots(const RoutingTable& table, std::string_view name) {
    uint16_t out[RouteResult::kMaxSends];
    const size_t n = table.one_cluster_slots(name, nullptr, out);
    return {out, out + n};
}

TEST(PositionSlots, AppliesOnlyWhereTheAnswerFollowsThePosition) {
    for (const char* text : {"cluster a carbon_ch h1:1 h2:2 h3:3;\nmatch * send to a;\n",
                             "cluster a carbon_ch replication 2 h1:1 h2:2 h3:3;\nmatch * send to a stop;\n",
                             "cluster a carbon_ch h1:1;\nmatch * send to a;\n"})
        EXPECT_TRUE(PositionSlots::applies_to(*table_of(text))) << text;
    for (const char* text : {
             "cluster a carbon_ch replication 3 h1:1 h2:2 h3:3;\nmatch * send to a;\n",          // more than kMaxSlots
             "cluster a carbon_ch replication 2 dynamic h1:1 h2:2 h3:3;\nmatch * send to a;\n",  // asks `up`
             "cluster a fnv1a_ch h1:1 h2:2;\nmatch * send to a;\n",
             "cluster a jump_fnv1a_ch h1:1 h2:2;\nmatch * send to a;\n",
             "cluster a any_of h1:1 h2:2;\nmatch * send to a;\n",
             "cluster a failover h1:1 h2:2;\nmatch * send to a;\n",
             "cluster a forward h1:1 h2:2;\nmatch * send to a;\n",
             "cluster a carbon_ch h1:1 h2:2;\nmatch ^x send to a;\n",
             "cluster a carbon_ch h1:1;\ncluster b carbon_ch h2:2;\nmatch * send to a b;\n",
         })
        EXPECT_FALSE(PositionSlots::applies_to(*table_of(text))) << text;
    std::vector<Destination> destinations(2);
    std::string error;
    ASSERT_TRUE(parse_destination("10.0.0.1:2003:a", destinations[0], error));
    ASSERT_TRUE(parse_destination("10.0.0.2:2003:b", destinations[1], error));
    for (size_t replication : {1, 2})
        EXPECT_TRUE(PositionSlots::applies_to(
            *RoutingTable::build_implicit(false, HashType::carbon_ch, destinations, replication, true, error)));
    EXPECT_FALSE(PositionSlots::applies_to(
        *RoutingTable::build_implicit(true, HashType::carbon_ch, destinations, 1, true, error)));  // broadcast
    EXPECT_FALSE(PositionSlots::applies_to(
        *RoutingTable::build_implicit(false, HashType::fnv1a_ch, destinations, 1, true, error)));
}

// The listener's use: one PositionSlots, reset on every table change. Runtime membership (putdest, deldest) and a
// table replaced by another never leave an answer of the old ring in use.
TEST(PositionSlots, ARingChangeNeverServesAStaleDestination) {
    const std::vector<std::string> names = test_names();
    PositionSlots slots;
    auto table = table_of("cluster c carbon_ch replication 2 a:2003=1 b:2003=2 c:2003=3;\nmatch * send to c;\n");
    const std::vector<std::vector<std::string>> memberships = {
        {"a:2003:1", "b:2003:2", "c:2003:3", "d:2003:4"},  // putdest d
        {"a:2003:1", "c:2003:3", "d:2003:4"},              // deldest b
        {"d:2003:4"},                                      // one left
        {"b:2003:2", "a:2003:1"},                          // others, another order
    };
    const auto check = [&](const RoutingTable& t, const std::string& when) {
        for (int pass = 0; pass < 2; ++pass)
            for (const std::string& name : names) {
                uint16_t out[RouteResult::kMaxSends];
                const size_t n = slots.slots(t, name, nullptr, out);
                ASSERT_EQ(std::vector<uint16_t>(out, out + n), uncached_slots(t, name)) << when << " " << name;
            }
    };
    check(*table, "as built");
    size_t moved = 0;
    for (const std::vector<std::string>& members : memberships) {
        std::vector<std::vector<uint16_t>> before;
        for (const std::string& name : names) before.push_back(uncached_slots(*table, name));
        std::string error;
        ASSERT_TRUE(table->set_cluster_members(0, members, error)) << error;
        slots.reset();
        check(*table, members.front() + "...");
        for (size_t i = 0; i < names.size(); ++i) moved += uncached_slots(*table, names[i]) != before[i];
    }
    EXPECT_GT(moved, names.size());  // the changes moved names: a stale answer would have been caught
    // Another table altogether (the implicit one, rebuilt over other destinations).
    std::vector<Destination> destinations(3);
    std::string error;
    for (size_t i = 0; i < 3; ++i)
        ASSERT_TRUE(parse_destination("10.0.0." + std::to_string(i + 1) + ":2003", destinations[i], error));
    auto implicit = RoutingTable::build_implicit(false, HashType::carbon_ch, destinations, 1, true, error);
    ASSERT_TRUE(implicit) << error;
    slots.reset();
    check(*implicit, "implicit");
}

TEST(PositionSlots, EveryResetForgetsTheAnswersBefore) {
    // The same names through two tables whose slots differ (b is slot 1 in one, slot 0 in the other).
    auto one = table_of("cluster c carbon_ch a:2003=1 b:2003=2;\nmatch * send to c;\n");
    auto other = table_of("cluster c carbon_ch b:2003=2 a:2003=1 c:2003=3;\nmatch * send to c;\n");
    PositionSlots slots;
    uint16_t out[RouteResult::kMaxSends];
    for (int i = 0; i < 4; ++i) {
        slots.reset();
        for (int k = 0; k < 500; ++k) {
            const std::string name = "m." + std::to_string(k);
            const RoutingTable& t = i % 2 ? *other : *one;
            const size_t n = slots.slots(t, name, nullptr, out);
            ASSERT_EQ(std::vector<uint16_t>(out, out + n), uncached_slots(t, name));
        }
    }
}

// More distinct answers than are kept (replication 2 over 20 destinations: up to 380 ordered pairs): the
// positions whose answer is not kept are asked each time, and every answer stays the table's.
TEST(PositionSlots, AnswersBeyondTheKeptOnesAreStillRight) {
    std::string members;
    for (int i = 0; i < 20; ++i) members += " h" + std::to_string(i) + ":2003=" + std::to_string(i);
    auto table = table_of("cluster c carbon_ch replication 2" + members + ";\nmatch * send to c;\n");
    ASSERT_TRUE(PositionSlots::applies_to(*table));
    PositionSlots slots;
    std::set<std::vector<uint16_t>> distinct;
    uint16_t out[RouteResult::kMaxSends];
    for (int pass = 0; pass < 2; ++pass)
        for (int k = 0; k < 20000; ++k) {
            const std::string name = "many.m" + std::to_string(k);
            const size_t n = slots.slots(*table, name, nullptr, out);
            ASSERT_EQ(std::vector<uint16_t>(out, out + n), uncached_slots(*table, name)) << name;
            distinct.insert(uncached_slots(*table, name));
        }
    EXPECT_GT(distinct.size(), PositionSlots::kMaxAnswers);
}

TEST(PositionSlots, LookupsDoNotAllocate) {
    const std::vector<std::string> names = test_names();
    auto table = table_of("cluster c carbon_ch replication 2 a:2003=1 b:2003=2 c:2003=3;\nmatch * send to c;\n");
    PositionSlots slots;
    uint16_t out[RouteResult::kMaxSends];
    const size_t before = allocation_count();
    for (int pass = 0; pass < 2; ++pass)
        for (const std::string& name : names) slots.slots(*table, name, nullptr, out);
    EXPECT_EQ(allocation_count(), before);
}

}  // namespace
}  // namespace polymur::route
