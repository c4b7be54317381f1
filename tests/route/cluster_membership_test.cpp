// Runtime cluster membership: a table given members at runtime places names as a table built from a file that
// lists them, the runtime-clusters file round-trips, and changes that no longer fit the rules file are left out
// with a note.
#include <gtest/gtest.h>

#include <memory>

#include "route/cluster_membership.hpp"
#include "table_of.hpp"

using namespace polymur::route;

namespace {

std::vector<std::string> placed(const RoutingTable& table, std::string_view name) {
    auto result = std::make_unique<RouteResult>();
    table.route(name, "", nullptr, *result);
    std::vector<std::string> out;
    for (size_t i = 0; i < result->send_count; ++i) out.push_back(table.slot_address(result->sends[i].slot));
    return out;
}

}  // namespace

TEST(ClusterMembership, AddedMembersPlaceLikeTheFileThatListsThem) {
    for (const char* type : {"carbon_ch replication 2", "fnv1a_ch", "jump_fnv1a_ch", "any_of", "failover"}) {
        auto runtime =
            table_of(std::string("cluster c ") + type + " a:2003=1 b:2003=2 c:2003=3;\nmatch * send to c;\n");
        auto file = table_of(std::string("cluster c ") + type +
                             " a:2003=1 b:2003=2 c:2003=3 d:2003=4 e:2004=5;\nmatch * send to c;\n");
        std::string error;
        ASSERT_TRUE(
            runtime->set_cluster_members(0, {"a:2003:1", "b:2003:2", "c:2003:3", "d:2003:4", "e:2004:5"}, error))
            << error;
        size_t moved_to_new = 0;
        for (int i = 0; i < 2000; ++i) {
            const std::string name = "some.metric." + std::to_string(i);
            EXPECT_EQ(placed(*runtime, name), placed(*file, name)) << type << " " << name;
            for (const std::string& to : placed(*runtime, name)) moved_to_new += to == "d:2003" || to == "e:2004";
        }
        if (std::string(type) != "failover") {
            EXPECT_GT(moved_to_new, 0u) << type;
        }
    }
}

TEST(ClusterMembership, RefusedMembersChangeNothing) {
    auto table = table_of("cluster c carbon_ch a:2003 b:2003;\nmatch * send to c;\n");
    std::string error;
    EXPECT_FALSE(table->set_cluster_members(0, {}, error));
    EXPECT_EQ(error, "cluster c would have no members (a rules file cannot name an empty cluster)");
    EXPECT_FALSE(table->set_cluster_members(0, {"a:2003", "a:2003:x"}, error));
    EXPECT_EQ(error, "cluster c would list a:2003 twice");
    EXPECT_FALSE(table->set_cluster_members(0, {"a:2003", "pickle://b:2004"}, error));
    EXPECT_EQ(error, "cluster members are [scheme://]host:port[:instance] with lines on the wire, not pickle://b:2004");
    EXPECT_FALSE(table->set_cluster_members(0, {"a:2003", "nonsense"}, error));
    EXPECT_EQ(table->cluster_member_texts(0), (std::vector<std::string> {"a:2003", "b:2003"}));
    EXPECT_EQ(table->slot_count(), 2u);
}

TEST(ClusterMembership, FileRoundTripsAndRefusesWhatItDoesNotWrite) {
    std::vector<ClusterChange> changes = {{"c", {"a:2003", "b:2003"}, {"a:2003", "x:2003:i"}},
                                          {"d", {"[::1]:2003"}, {"[::1]:2003", "y:1"}}};
    std::vector<ClusterChange> back;
    std::string error;
    ASSERT_TRUE(parse_runtime_clusters(format_runtime_clusters(changes), back, error)) << error;
    ASSERT_EQ(back.size(), 2u);
    EXPECT_EQ(back[0].members, changes[0].members);
    EXPECT_EQ(back[1].file_members, changes[1].file_members);
    EXPECT_EQ(format_runtime_clusters({}), "");
    for (const char* bad :
         {"cluster c now a:1\n", "cluster c file a:1\n", "cluster c sometimes a:1\n",
          "clusters c file a:1\ncluster c now a:1\n", "cluster c file\n", "cluster c file a:1\ncluster d now a:1\n"}) {
        EXPECT_FALSE(parse_runtime_clusters(bad, back, error)) << bad;
        EXPECT_EQ(error.substr(0, 5) == "line " || error.substr(0, 8) == "cluster ", true) << error;
    }
}

TEST(ClusterMembership, ChangesThatNoLongerFitTheRulesFileAreLeftOutWithANote) {
    auto table = table_of("cluster c forward a:2003 b:2003;\ncluster e forward z:2003;\nmatch * send to c e;\n");
    std::vector<ClusterChange> changes = {{"c", {"a:2003"}, {"a:2003", "x:2003"}},  // the file changed c since
                                          {"gone", {"q:1"}, {"q:1", "r:1"}},        // not in the file any more
                                          {"e", {"z:2003"}, {"z:2003", "y:2003"}}};
    std::vector<std::string> notes;
    apply_runtime_clusters(*table, changes, notes);
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_NE(notes[0].find("cluster c: the rules file changed its members since"), std::string::npos) << notes[0];
    EXPECT_NE(notes[1].find("cluster gone is not in the rules file any more"), std::string::npos) << notes[1];
    EXPECT_EQ(table->cluster_member_texts(0), (std::vector<std::string> {"a:2003", "b:2003"}));
    EXPECT_EQ(table->cluster_member_texts(1), (std::vector<std::string> {"z:2003", "y:2003"}));
    EXPECT_EQ(runtime_cluster_changes(*table).size(), 1u);
    // Applying nothing gives the file's members back.
    notes.clear();
    apply_runtime_clusters(*table, {}, notes);
    EXPECT_TRUE(notes.empty());
    EXPECT_EQ(table->cluster_member_texts(1), (std::vector<std::string> {"z:2003"}));
    EXPECT_FALSE(table->slot_in_cluster(size_t(table->find_slot("y:2003"))));
}
