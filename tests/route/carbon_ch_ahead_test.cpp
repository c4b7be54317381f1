// carbon_ch positions computed side by side (route/carbon_ch_ahead.hpp) against OpenSSL's MD5, on every
// vector width this CPU has, and the scope that hands them to carbon_ch_position.
#include "route/carbon_ch_ahead.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "route/hash_ring.hpp"

// Defined in allocation_counter.cpp, which replaces global operator new for this binary.
size_t allocation_count();

namespace polymur::route {

void PrintTo(VectorWidth width, std::ostream* out) {
    *out << (width == VectorWidth::baseline ? "baseline" : width == VectorWidth::avx2 ? "avx2" : "avx512");
}

namespace {

uint32_t openssl_position(std::string_view name) {
    unsigned char digest[16];
    unsigned int length = 0;
    EXPECT_EQ(EVP_Digest(name.data(), name.size(), digest, &length, EVP_md5(), nullptr), 1);
    return uint32_t(digest[0]) << 8 | digest[1];
}

class Widths : public ::testing::TestWithParam<VectorWidth> {
protected:
    void SetUp() override {
        if (!use_vector_width(GetParam())) GTEST_SKIP() << "this CPU has no such registers";
    }
    void TearDown() override {
        for (VectorWidth widest : {VectorWidth::avx512, VectorWidth::avx2, VectorWidth::baseline})
            if (use_vector_width(widest)) break;
    }
};

TEST_P(Widths, EveryLengthAndBatchSizeMatchesOpenSsl) {
    std::mt19937 random(7);
    std::vector<std::string> names;
    for (size_t size = 0; size < 140; ++size) {  // one block below 56 bytes, two or three above
        std::string name(size, '\0');
        for (char& c : name) c = static_cast<char>(random());
        names.push_back(name);
    }
    for (int i = 0; i < 200; ++i) names.push_back("collectd.host" + std::to_string(i) + ".cpu-0.cpu-user");
    std::vector<std::string_view> views(names.begin(), names.end());
    std::vector<uint32_t> expected;
    for (std::string_view name : views) expected.push_back(openssl_position(name));
    // Every batch size, starting anywhere: lanes left empty, names of every length in every lane.
    for (size_t count = 0; count <= 2 * kAheadBatch + 1; ++count) {
        for (size_t first = 0; first + count <= views.size(); first += 7) {
            std::vector<uint32_t> got(count, 0xffffffff);
            carbon_ch_positions(views.data() + first, count, got.data());
            for (size_t i = 0; i < count; ++i)
                ASSERT_EQ(got[i], expected[first + i])
                    << "name " << first + i << " of size " << views[first + i].size() << ", batch of " << count;
        }
    }
}

TEST_P(Widths, NoAllocation) {
    std::vector<std::string> names;
    for (int i = 0; i < 40; ++i) names.push_back("a.fairly.ordinary.metric.name." + std::to_string(i));
    std::vector<std::string_view> views(names.begin(), names.end());
    uint32_t positions[40];
    const size_t before = allocation_count();
    carbon_ch_positions(views.data(), views.size(), positions);
    {
        const CarbonChAhead ahead(views.data(), kAheadBatch);
        for (size_t i = 0; i < kAheadBatch; ++i) positions[i] = carbon_ch_position(views[i]);
    }
    EXPECT_EQ(allocation_count(), before);
}

INSTANTIATE_TEST_SUITE_P(CarbonChAhead, Widths,
                         ::testing::Values(VectorWidth::baseline, VectorWidth::avx2, VectorWidth::avx512),
                         [](const auto& info) { return ::testing::PrintToString(info.param); });

TEST(CarbonChAhead, AnswersForItsNamesAtTheirAddressesOnly) {
    std::vector<std::string> names;
    for (int i = 0; i < 12; ++i) names.push_back("servers.web" + std::to_string(i) + ".load");
    names.push_back("");                    // never computed ahead
    names.push_back(std::string(60, 'x'));  // two blocks: not computed ahead
    std::vector<std::string_view> views(names.begin(), names.end());
    const std::string copy = names[3];  // the same bytes elsewhere
    uint32_t position = 0;
    EXPECT_FALSE(CarbonChAhead::find(views[0], position));
    {
        const CarbonChAhead ahead(views.data(), views.size());
        // In order, out of order and twice: each found, each right.
        for (size_t i : {0, 1, 2, 5, 4, 4, 11, 0}) {
            ASSERT_TRUE(CarbonChAhead::find(views[i], position)) << i;
            EXPECT_EQ(position, openssl_position(views[i])) << i;
            EXPECT_EQ(carbon_ch_position(views[i]), openssl_position(views[i])) << i;
        }
        EXPECT_FALSE(CarbonChAhead::find(copy, position));
        EXPECT_FALSE(CarbonChAhead::find(views[3].substr(0, 5), position));  // same address, other length
        EXPECT_FALSE(CarbonChAhead::find(views[12], position));
        EXPECT_FALSE(CarbonChAhead::find(views[13], position));
        EXPECT_EQ(carbon_ch_position(copy), openssl_position(copy));
        EXPECT_EQ(carbon_ch_position(views[13]), openssl_position(views[13]));
        {
            const CarbonChAhead inner(views.data() + 6, 4);  // the innermost scope answers
            EXPECT_TRUE(CarbonChAhead::find(views[7], position));
            EXPECT_FALSE(CarbonChAhead::find(views[0], position));
        }
        EXPECT_TRUE(CarbonChAhead::find(views[0], position));
    }
    EXPECT_FALSE(CarbonChAhead::find(views[0], position));  // gone with its scope
}

TEST(CarbonChAhead, TooFewNamesAreLeftToTheLookup) {
    const std::string_view names[] = {"a.b", "c.d"};
    const CarbonChAhead ahead(names, 2);
    uint32_t position = 0;
    EXPECT_FALSE(CarbonChAhead::find(names[0], position));
    EXPECT_EQ(carbon_ch_position(names[0]), openssl_position(names[0]));
}

}  // namespace
}  // namespace polymur::route
