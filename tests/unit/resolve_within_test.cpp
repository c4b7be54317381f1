// resolve_within: lookups in child processes, bounded in time, every child reaped.
#include "common/resolve_within.hpp"

#include <gtest/gtest.h>
#include <netdb.h>
#include <sys/wait.h>

#include <cerrno>
#include <chrono>

namespace polymur {
namespace {

// No child of this process is left, running or unreaped.
void expect_no_child_left() {
    errno = 0;
    EXPECT_EQ(waitpid(-1, nullptr, WNOHANG), -1);
    EXPECT_EQ(errno, ECHILD);
}

TEST(ResolveWithin, NumericAndLocalHostsResolveAndFailuresSayWhy) {
    const std::vector<int> codes = resolve_within({"127.0.0.1", "::1", "localhost", "no-such-host.invalid", ""}, 10000);
    ASSERT_EQ(codes.size(), 5u);
    EXPECT_EQ(codes[0], 0);
    EXPECT_EQ(codes[1], 0);
    EXPECT_EQ(codes[2], 0);
    EXPECT_NE(codes[3], 0);
    EXPECT_NE(codes[3], kResolveTimedOut);  // the resolver answers here: a refusal, not silence
    EXPECT_FALSE(describe_resolve_failure(codes[3], 10000).empty());
    EXPECT_EQ(codes[4], 0);  // nothing to look up
    expect_no_child_left();
}

// A lookup not answered by the deadline is ended and reported as such; the caller waited no longer. With no
// time at all, every name is unanswered (a numeric address needs no lookup).
TEST(ResolveWithin, WhatIsNotAnsweredInTimeIsEndedAndSaidSo) {
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int> codes = resolve_within({"localhost", "10.1.2.3", "no-such-host.invalid"}, 0);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    ASSERT_EQ(codes.size(), 3u);
    EXPECT_EQ(codes[0], kResolveTimedOut);
    EXPECT_EQ(codes[1], 0);
    EXPECT_EQ(codes[2], kResolveTimedOut);
    EXPECT_EQ(describe_resolve_failure(kResolveTimedOut, 2000), "no answer from the resolver within 2.0 s");
    expect_no_child_left();
}

}  // namespace
}  // namespace polymur
