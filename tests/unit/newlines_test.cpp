// for_each_newline: every '\n' of a buffer, in order, whatever the buffer's length and wherever
// the newlines fall relative to its 64-byte blocks.
#include "protocol/newlines.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace polymur::protocol {
namespace {

TEST(ForEachNewline, FindsEveryNewlineInOrderAtEveryLengthAndPosition) {
    uint64_t state = 12345;
    auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
    for (size_t size = 0; size <= 200; ++size)
        for (int round = 0; round < 20; ++round) {
            std::string buf(size, 'x');
            std::vector<size_t> expected;
            for (size_t i = 0; i < size; ++i)
                if (next() % (round % 5 + 2) == 0) buf[i] = '\n', expected.push_back(i);
            std::vector<size_t> found;
            for_each_newline(buf.data(), buf.size(), [&](size_t at) { found.push_back(at); });
            ASSERT_EQ(found, expected) << "size " << size << " round " << round;
        }
}

TEST(ForEachNewline, AllNewlinesAndNone) {
    const std::string all(130, '\n');
    size_t count = 0, last = 0;
    for_each_newline(all.data(), all.size(), [&](size_t at) { ++count, last = at; });
    EXPECT_EQ(count, 130u);
    EXPECT_EQ(last, 129u);
    const std::string none(130, '\x8a');  // '\n' | 0x80: not a newline
    count = 0;
    for_each_newline(none.data(), none.size(), [&](size_t) { ++count; });
    EXPECT_EQ(count, 0u);
}

}  // namespace
}  // namespace polymur::protocol
