// The placement cache (route/placement_cache.hpp): a remembered carbon_ch position is always the one MD5 gives
// (hits, misses, colliding names, eviction, names too long to keep), answered one at a time or for a batch.
#include "route/placement_cache.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "route/carbon_ch_ahead.hpp"
#include "route/hash_ring.hpp"

// Defined in allocation_counter.cpp, which replaces global operator new for this binary.
size_t allocation_count();

namespace polymur::route {
namespace {

uint32_t openssl_position(std::string_view name) {
    unsigned char digest[16];
    unsigned int length = 0;
    EXPECT_EQ(EVP_Digest(name.data(), name.size(), digest, &length, EVP_md5(), nullptr), 1);
    return uint32_t(digest[0]) << 8 | digest[1];
}

// Installs a cache on this thread for the test's length.
class Installed {
public:
    explicit Installed(PlacementCache& cache) { use_placement_cache(&cache); }
    ~Installed() { use_placement_cache(nullptr); }
    Installed(const Installed&) = delete;
    Installed& operator=(const Installed&) = delete;
};

// Names of every length that matters to MD5 (one block below 56 bytes) and to the cache (kMaxName), random bytes
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

TEST(PlacementCache, HitsAndMissesPlaceAsMd5Does) {
    const std::vector<std::string> names = test_names();
    // A cache that holds them all, and one of a single set that keeps evicting.
    for (size_t entries : {size_t(1) << 16, PlacementCache::kWays}) {
        PlacementCache cache(entries);
        const Installed installed(cache);
        for (int pass = 0; pass < 3; ++pass)
            for (const std::string& name : names)
                ASSERT_EQ(carbon_ch_position(name), openssl_position(name)) << entries << " " << pass << " " << name;
    }
}

TEST(PlacementCache, BatchesAheadAnswerFromItAndFillIt) {
    const std::vector<std::string> names = test_names();
    std::vector<std::string_view> views(names.begin(), names.end());
    PlacementCache cache(size_t(1) << 16);
    const Installed installed(cache);
    for (int pass = 0; pass < 2; ++pass) {
        // Batches of every size, so that some hold a few misses and some many (pass 0), then only hits (pass 1).
        for (size_t first = 0, count = 1; first < views.size(); first += count, count = count % kAheadBatch + 1) {
            const size_t n = std::min(count, views.size() - first);
            const CarbonChAhead ahead(views.data() + first, n);
            for (size_t i = first; i < first + n; ++i)
                ASSERT_EQ(carbon_ch_position(views[i]), openssl_position(views[i])) << pass << " " << names[i];
        }
    }
    uint64_t hash;
    uint32_t position;
    size_t kept = 0;
    for (const std::string& name : names) kept += cache.find(name, hash, position);
    EXPECT_EQ(kept, std::count_if(names.begin(), names.end(), [](const std::string& n) {
                  return n.size() <= PlacementCache::kMaxName;
              }));
}

// Names in one set with the same tag are told apart by their bytes: a tag is never taken for the name.
TEST(PlacementCache, NamesWithTheSameTagKeepTheirOwnPositions) {
    std::map<uint64_t, std::string> by_tag;  // the 16 bits a tag comes from
    std::string a, b;
    for (int i = 0; a.empty(); ++i) {
        std::string name = "servers.web" + std::to_string(i) + ".load";
        auto [it, inserted] = by_tag.emplace(PlacementCache::hash(name) >> 48, name);
        if (!inserted) a = it->second, b = name;
    }
    ASSERT_NE(openssl_position(a), openssl_position(b)) << "pick other names: these collide in MD5 too";
    PlacementCache cache(PlacementCache::kWays);  // one set: every name shares it
    uint64_t hash;
    uint32_t position = 0;
    ASSERT_FALSE(cache.find(a, hash, position));
    cache.insert(a, hash, openssl_position(a));
    EXPECT_FALSE(cache.find(b, hash, position));  // same set, same tag, other bytes
    cache.insert(b, hash, openssl_position(b));
    ASSERT_TRUE(cache.find(a, hash, position));
    EXPECT_EQ(position, openssl_position(a));
    ASSERT_TRUE(cache.find(b, hash, position));
    EXPECT_EQ(position, openssl_position(b));
    // Same length and tag, one byte off, and a prefix: not found.
    std::string c = a;
    c.back() ^= 1;
    EXPECT_FALSE(cache.find(c, hash, position));
    EXPECT_FALSE(cache.find(std::string_view(a).substr(0, a.size() - 1), hash, position));
}

TEST(PlacementCache, RecurringNamesStayAndUnusedOnesGiveWay) {
    PlacementCache cache(PlacementCache::kWays);  // one set of kWays
    std::vector<std::string> names;
    for (size_t i = 0; i < 2 * PlacementCache::kWays; ++i) names.push_back("name." + std::to_string(i));
    uint64_t hash;
    uint32_t position;
    for (size_t i = 0; i < PlacementCache::kWays; ++i) {
        ASSERT_FALSE(cache.find(names[i], hash, position));
        cache.insert(names[i], hash, uint32_t(i));
    }
    // All looked up again (they recur): a newcomer is turned away once per way it considers, and the first
    // ones stay.
    for (size_t i = 0; i < PlacementCache::kWays; ++i) ASSERT_TRUE(cache.find(names[i], hash, position));
    const std::string& newcomer = names[PlacementCache::kWays];
    ASSERT_FALSE(cache.find(newcomer, hash, position));
    cache.insert(newcomer, hash, 99);
    EXPECT_FALSE(cache.find(newcomer, hash, position));
    for (size_t i = 0; i < PlacementCache::kWays; ++i) {
        ASSERT_TRUE(cache.find(names[i], hash, position)) << i;
        EXPECT_EQ(position, i);
    }
    // Now none is looked up again: the next names take their places, and every answer is still right.
    for (size_t i = PlacementCache::kWays; i < names.size(); ++i) {
        for (int attempt = 0; attempt < 3 && !cache.find(names[i], hash, position); ++attempt)
            cache.insert(names[i], hash, uint32_t(i));
    }
    size_t old_kept = 0, new_kept = 0;
    for (size_t i = 0; i < names.size(); ++i) {
        if (!cache.find(names[i], hash, position)) continue;
        EXPECT_EQ(position, i) << names[i];
        (i < PlacementCache::kWays ? old_kept : new_kept) += 1;
    }
    EXPECT_EQ(old_kept + new_kept, PlacementCache::kWays);
    EXPECT_GT(new_kept, 0u);
}

TEST(PlacementCache, LongNamesAreNotKept) {
    PlacementCache cache;
    const std::string longest(PlacementCache::kMaxName, 'x'), too_long(PlacementCache::kMaxName + 1, 'x');
    uint64_t hash;
    uint32_t position;
    ASSERT_FALSE(cache.find(longest, hash, position));
    cache.insert(longest, hash, 7);
    EXPECT_TRUE(cache.find(longest, hash, position));
    EXPECT_EQ(position, 7u);
    EXPECT_FALSE(cache.find(too_long, hash, position));
    cache.insert(too_long, PlacementCache::hash(too_long), 7);
    EXPECT_FALSE(cache.find(too_long, hash, position));
    const Installed installed(cache);
    EXPECT_EQ(carbon_ch_position(too_long), openssl_position(too_long));
}

TEST(PlacementCache, LookupsDoNotAllocate) {
    const std::vector<std::string> names = test_names();
    PlacementCache cache;
    const Installed installed(cache);
    uint32_t sum = 0;
    const size_t before = allocation_count();
    for (int pass = 0; pass < 2; ++pass)
        for (const std::string& name : names) sum += carbon_ch_position(name);
    EXPECT_EQ(allocation_count(), before);
    EXPECT_GT(sum, 0u);
}

}  // namespace
}  // namespace polymur::route
