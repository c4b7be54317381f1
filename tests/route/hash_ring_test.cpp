// Ring construction and lookup edge cases. Expected numbers marked "carbon 1.1.7" were produced
// by carbon.hashing.ConsistentHashRing from the Debian graphite-carbon package.
#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <random>
#include <string>
#include <vector>

#include "route/hash_ring.hpp"

// Defined in allocation_counter.cpp, which replaces global operator new for this binary.
size_t allocation_count();

namespace polymur::route {
namespace {

std::vector<Destination> parse_all(std::initializer_list<const char*> texts) {
    std::vector<Destination> result;
    for (const char* text : texts) {
        Destination d;
        std::string error;
        EXPECT_TRUE(parse_destination(text, d, error)) << error;
        result.push_back(d);
    }
    return result;
}

std::unique_ptr<HashRing> build_ok(HashType type, const std::vector<Destination>& destinations) {
    std::string error;
    auto ring = HashRing::build(type, destinations, error);
    EXPECT_NE(ring, nullptr) << error;
    return ring;
}

std::vector<uint16_t> lookup(const HashRing& ring, std::string_view metric, size_t replication, bool diverse) {
    std::vector<uint16_t> out(replication);
    out.resize(ring.lookup(metric, replication, diverse, out.data()));
    return out;
}

using Indices = std::vector<uint16_t>;

TEST(PythonRepr, MatchesPython3) {
    // Right-hand sides are what /usr/bin/python3 (3.11) prints for repr() of the decoded string.
    const std::pair<std::string, std::string> cases[] = {
        {"a", "'a'"},
        {"", "''"},
        {"it's", "\"it's\""},
        {"say \"hi\"", "'say \"hi\"'"},
        {"both ' and \"", "'both \\' and \"'"},
        {"back\\slash", "'back\\\\slash'"},
        {"tab\there", "'tab\\there'"},
        {"nl\nx", "'nl\\nx'"},
        {"cr\rx", "'cr\\rx'"},
        {"\x01\x1f\x7f", "'\\x01\\x1f\\x7f'"},
        {std::string("\xc3\xbc\x00", 3), "'\xc3\xbc\\x00'"},
        {"\xc3\xa9t\xc3\xa9", "'\xc3\xa9t\xc3\xa9'"},  // printable non-ASCII stays UTF-8
        {"\xf0\x9f\x98\x80", "'\xf0\x9f\x98\x80'"},
        {"nb\xc2\xa0sp", "'nb\\xa0sp'"},
        {"\xc2\x80", "'\\x80'"},
        {"\xc2\xad", "'\\xad'"},
        {"zw\xe2\x80\x8b", "'zw\\u200b'"},
        {"\xe2\x80\xa8", "'\\u2028'"},
        {"\xee\x80\x80", "'\\ue000'"},
        {"\xf3\xa0\x80\x81", "'\\U000e0001'"},
        // undecodable bytes, as surrogateescape would decode them
        {"\xff\xe2\x82x", "'\\udcff\\udce2\\udc82x'"},
        {"\xed\xa0\x80", "'\\udced\\udca0\\udc80'"},
        {"\xc0\xaf", "'\\udcc0\\udcaf'"},
    };
    for (const auto& [input, expected] : cases) EXPECT_EQ(python_repr(input), expected) << input;
}

TEST(Md5, RfcVectorsAndOpenSsl) {
    uint8_t digest[16];
    md5_digest("abc", 3, digest);
    EXPECT_EQ(digest[0], 0x90);
    EXPECT_EQ(digest[15], 0x72);  // 900150983cd24fb0d6963f7d28e17f72

    std::mt19937 random(42);
    std::string data;
    for (size_t size = 0; size < 300; ++size) {
        data.resize(size);
        for (char& c : data) c = static_cast<char>(random());
        uint8_t ours[16], theirs[16];
        unsigned int length = 0;
        md5_digest(data.data(), data.size(), ours);
        ASSERT_EQ(EVP_Digest(data.data(), data.size(), theirs, &length, EVP_md5(), nullptr), 1);
        ASSERT_EQ(std::string(ours, ours + 16), std::string(theirs, theirs + 16)) << "size " << size;
    }
}

TEST(HashType, Names) {
    HashType type;
    for (HashType t : {HashType::carbon_ch, HashType::fnv1a_ch, HashType::jump_fnv1a_ch}) {
        ASSERT_TRUE(parse_hash_type(hash_type_name(t), type));
        EXPECT_EQ(type, t);
    }
    EXPECT_FALSE(parse_hash_type("mmh3_ch", type));
    EXPECT_FALSE(parse_hash_type("", type));
}

// Positions of a one-node ring whose replica keys do not collide: the sorted hashes of its keys.
void expect_single_node_ring(std::string_view destination, std::string_view tuple_repr) {
    auto ring = build_ok(HashType::carbon_ch, parse_all({std::string(destination).c_str()}));
    std::vector<uint32_t> expected, actual;
    for (int i = 0; i < 100; ++i)
        expected.push_back(carbon_ch_position(std::string(tuple_repr) + ":" + std::to_string(i)));
    std::sort(expected.begin(), expected.end());
    for (const auto& e : ring->entries()) actual.push_back(e.position);
    EXPECT_EQ(actual, expected) << destination;
}

TEST(CarbonRing, ReplicaKeysArePythonTupleRepr) {
    expect_single_node_ring("[::1]:2004:b", "('::1', 'b')");
    expect_single_node_ring("[2001:db8::1]:2004", "('2001:db8::1', None)");
    expect_single_node_ring("10.0.0.1:2004", "('10.0.0.1', None)");
    expect_single_node_ring("10.0.0.1:2004:", "('10.0.0.1', '')");
    expect_single_node_ring("10.0.0.1:2004:it's", "('10.0.0.1', \"it's\")");
}

TEST(CarbonRing, CollisionBumpsPastTopOfRing) {
    // carbon 1.1.7: replica 20 of ('h447', None) and replica 99 of ('h806', None) both hash to
    // 65535; the later one moves to 65536, which no metric position can exceed.
    auto ring = build_ok(HashType::carbon_ch, parse_all({"h447:2004", "h806:2004"}));
    auto entries = ring->entries();
    ASSERT_EQ(entries.size(), 200u);
    EXPECT_EQ(entries[197].position, 65144u);
    EXPECT_EQ(entries[197].destination, 1);
    EXPECT_EQ(entries[198].position, 65535u);
    EXPECT_EQ(entries[198].destination, 0);
    EXPECT_EQ(entries[199].position, 65536u);
    EXPECT_EQ(entries[199].destination, 1);

    // Order of addition decides who is bumped.
    auto swapped = build_ok(HashType::carbon_ch, parse_all({"h806:2004", "h447:2004"}))->entries();
    EXPECT_EQ(swapped[198].destination, 0);  // h806 now holds 65535
    EXPECT_EQ(swapped[199].destination, 1);
}

TEST(FnvRing, SameInstanceOnTwoHostsCollidesEverywhere) {
    // fnv1a_ch ignores the host: both nodes have identical replica keys "0-i928".."99-i928", so
    // every position of the second node is taken and bumped. Replica 75 hashes to 65535.
    auto destinations = parse_all({"10.0.0.1:2004:i928", "10.0.0.2:2004:i928"});
    auto ring = build_ok(HashType::fnv1a_ch, destinations);
    auto entries = ring->entries();
    ASSERT_EQ(entries.size(), 200u);
    EXPECT_EQ(fnv1a_ch_position("75-i928"), 65535u);
    // carbon 1.1.7: the last three entries
    EXPECT_EQ(entries[197].position, 65351u);
    EXPECT_EQ(entries[197].destination, 1);
    EXPECT_EQ(entries[198].position, 65535u);
    EXPECT_EQ(entries[198].destination, 0);
    EXPECT_EQ(entries[199].position, 65536u);
    EXPECT_EQ(entries[199].destination, 1);
    for (int i = 0; i < 100; ++i) {
        const uint32_t first = fnv1a_ch_position(std::to_string(i) + "-i928");
        bool found = false;
        for (const auto& e : entries) found |= e.destination == 0 && e.position == first;
        EXPECT_TRUE(found) << "replica " << i << " of the first node should sit at its own hash";
    }
    // Still a valid ring: positions strictly increasing.
    for (size_t i = 1; i < entries.size(); ++i) EXPECT_LT(entries[i - 1].position, entries[i].position);
}

TEST(CarbonRing, WrapsAroundPastLastEntry) {
    for (HashType type : {HashType::carbon_ch, HashType::fnv1a_ch}) {
        auto ring = build_ok(type, parse_all({"10.0.0.1:2004:a", "10.0.0.2:2004:b", "10.0.0.3:2004:c"}));
        auto entries = ring->entries();
        int wrapped = 0;
        for (int i = 0; i < 200000 && wrapped < 3; ++i) {
            const std::string metric = "wrap.metric." + std::to_string(i);
            const uint32_t position =
                type == HashType::carbon_ch ? carbon_ch_position(metric) : fnv1a_ch_position(metric);
            if (position <= entries.back().position) continue;
            ++wrapped;
            EXPECT_EQ(lookup(*ring, metric, 1, true), Indices {entries.front().destination}) << metric;
        }
        EXPECT_EQ(wrapped, 3) << hash_type_name(type);
    }
}

TEST(CarbonRing, ExactPositionMatchTakesThatEntry) {
    auto ring = build_ok(HashType::carbon_ch, parse_all({"10.0.0.1:2004:a", "10.0.0.2:2004:b"}));
    auto entries = ring->entries();
    // Find metrics landing exactly on an entry: bisect_left picks that entry, not the next one.
    int exact = 0;
    for (int i = 0; i < 300000 && exact < 3; ++i) {
        const std::string metric = "exact." + std::to_string(i);
        const uint32_t position = carbon_ch_position(metric);
        for (const auto& e : entries) {
            if (e.position != position) continue;
            ++exact;
            EXPECT_EQ(lookup(*ring, metric, 1, false), Indices {e.destination});
        }
    }
    EXPECT_GT(exact, 0);
}

TEST(CarbonRing, OneNodeRingYieldsTheNodeTwice) {
    // get_nodes on a one-node ring yields the node before its walk and again from the walk, so
    // carbon-relay with REPLICATION_FACTOR=2 and DIVERSE_REPLICAS=False sends twice.
    for (HashType type : {HashType::carbon_ch, HashType::fnv1a_ch}) {
        auto ring = build_ok(type, parse_all({"127.0.0.1:2004:a"}));
        EXPECT_EQ(lookup(*ring, "foo", 1, false), (Indices {0}));
        EXPECT_EQ(lookup(*ring, "foo", 2, false), (Indices {0, 0}));
        EXPECT_EQ(lookup(*ring, "foo", 3, false), (Indices {0, 0}));
        EXPECT_EQ(lookup(*ring, "foo", 2, true), (Indices {0}));
        EXPECT_EQ(ring->size(), 1u);
    }
}

TEST(CarbonRing, DiverseReplicasSkipSameHost) {
    auto ring = build_ok(HashType::carbon_ch,
                         parse_all({"10.0.0.1:2004:a", "10.0.0.1:2104:b", "10.0.0.1:2204:c", "10.0.0.2:2004:a"}));
    for (int i = 0; i < 500; ++i) {
        const std::string metric = "diverse." + std::to_string(i);
        auto diverse = lookup(*ring, metric, 3, true);
        // Only two hosts exist, so at most two destinations, on different hosts.
        ASSERT_EQ(diverse.size(), 2u) << metric;
        EXPECT_NE(diverse[0] == 3, diverse[1] == 3) << metric;
        auto walk = lookup(*ring, metric, 3, false);
        ASSERT_EQ(walk.size(), 3u);
        EXPECT_EQ(walk[0], diverse[0]);
    }
}

TEST(CarbonRing, ZeroReplicationWritesNothing) {
    auto ring = build_ok(HashType::carbon_ch, parse_all({"a:1", "b:1"}));
    uint16_t out[1] = {99};
    EXPECT_EQ(ring->lookup("x", 0, true, out), 0u);
    EXPECT_EQ(out[0], 99);
}

TEST(HashRing, DuplicateRingNodeRefusedNamingBoth) {
    for (HashType type : {HashType::carbon_ch, HashType::fnv1a_ch}) {
        std::string error;
        // Different ports, same (server, instance): carbon keys its ring without the port.
        EXPECT_EQ(HashRing::build(type, parse_all({"10.0.0.1:2004:a", "10.0.0.2:2004", "10.0.0.1:2104:a"}), error),
                  nullptr);
        EXPECT_NE(error.find("'10.0.0.1:2004:a'"), std::string::npos) << error;
        EXPECT_NE(error.find("'10.0.0.1:2104:a'"), std::string::npos) << error;

        EXPECT_EQ(HashRing::build(type, parse_all({"cache1:2004", "cache1:2104"}), error), nullptr);
        EXPECT_NE(error.find("'cache1:2004' and 'cache1:2104'"), std::string::npos) << error;

        // None and '' are distinct instances, so these are two nodes.
        EXPECT_NE(HashRing::build(type, parse_all({"cache1:2004", "cache1:2104:"}), error), nullptr);
    }
    std::string error;
    EXPECT_EQ(HashRing::build(HashType::jump_fnv1a_ch, parse_all({"h:2003:1", "h:2003:2"}), error), nullptr);
    EXPECT_NE(error.find("'h:2003:1' and 'h:2003:2'"), std::string::npos) << error;
    EXPECT_NE(HashRing::build(HashType::jump_fnv1a_ch, parse_all({"h:2003", "h:2004"}), error), nullptr);
    EXPECT_EQ(HashRing::build(HashType::carbon_ch, {}, error), nullptr);
}

TEST(JumpRing, BucketOrderFollowsInstances) {
    // Instances first (numeric when both are integers, else bytewise), then the rest as given.
    auto destinations = parse_all({"h1:1:b", "h2:1", "h3:1:10", "h4:1:9", "h5:1:a", "h6:1"});
    auto entries = build_ok(HashType::jump_fnv1a_ch, destinations)->entries();
    std::vector<uint16_t> order;
    for (const auto& e : entries) order.push_back(e.destination);
    EXPECT_EQ(order, (std::vector<uint16_t> {3, 2, 4, 0, 1, 5}));  // checked with carbon-c-relay -t
}

TEST(JumpRing, ReplicasAreDistinctAndStable) {
    auto ring = build_ok(HashType::jump_fnv1a_ch, parse_all({"a:1", "b:1", "c:1", "d:1", "e:1"}));
    for (int i = 0; i < 1000; ++i) {
        const std::string metric = "jump." + std::to_string(i);
        auto all = lookup(*ring, metric, 10, true);
        ASSERT_EQ(all.size(), 5u);
        std::vector<uint16_t> sorted = all;
        std::sort(sorted.begin(), sorted.end());
        EXPECT_EQ(sorted, (std::vector<uint16_t> {0, 1, 2, 3, 4}));
        EXPECT_EQ(lookup(*ring, metric, 2, false), (std::vector<uint16_t> {all[0], all[1]}));
    }
}

TEST(HashRing, LookupDoesNotAllocate) {
    const size_t probe = allocation_count();
    auto counted = std::make_unique<int>(1);
    ASSERT_GT(allocation_count(), probe) << "the allocation counter is not in effect";
    const std::string long_name(16384, 'x');
    const std::string names[] = {"a", "", "servers.web01.cpu;dc=ams",
                                 "\xc3\xbc"
                                 "n"
                                 "\xc3\xaf"
                                 "c"
                                 "\xc3\xb6"
                                 "d"
                                 "\xc3\xa9",
                                 long_name};
    auto destinations = parse_all({"10.0.0.1:2004:a", "10.0.0.1:2104:b", "10.0.0.2:2004:a", "10.0.0.3:2004"});
    for (auto [type, compat] :
         {std::pair {HashType::carbon_ch, HashCompat::graphite}, std::pair {HashType::fnv1a_ch, HashCompat::graphite},
          std::pair {HashType::jump_fnv1a_ch, HashCompat::graphite},
          std::pair {HashType::carbon_ch, HashCompat::carbon_c_relay},
          std::pair {HashType::fnv1a_ch, HashCompat::carbon_c_relay}}) {
        std::string error;
        auto ring = HashRing::build(type, destinations, error, compat);
        ASSERT_NE(ring, nullptr) << error;
        uint16_t out[kMaxReplication];
        size_t written = 0;
        const size_t before = allocation_count();
        for (const std::string& name : names)
            for (size_t replication : {size_t(1), size_t(2), size_t(4), kMaxReplication})
                for (bool diverse : {true, false}) written += ring->lookup(name, replication, diverse, out);
        EXPECT_EQ(allocation_count(), before) << hash_type_name(type) << " " << hash_compat_name(compat);
        EXPECT_GT(written, 0u);
    }
}

}  // namespace
}  // namespace polymur::route
