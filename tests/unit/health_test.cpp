#include "supervisor/health.hpp"

#include <gtest/gtest.h>

namespace polymur {
namespace {

ChildView child(const char* name, pid_t pid, int64_t started, int64_t heartbeat) {
    return {name, pid, true, started, heartbeat, 5000};
}

TEST(Health, ReadyOnlyWhenRunningWithEveryChildReporting) {
    std::vector<ChildView> children = {child("listener 0", 10, 1000, 9900), child("output a:1", 11, 1000, 9950)};
    EXPECT_TRUE(evaluate_health("running", children, 10000).ready);
    EXPECT_EQ(evaluate_health("running", children, 10000).reason, "ok");
    EXPECT_EQ(evaluate_health("starting", children, 10000).reason, "starting");
    EXPECT_FALSE(evaluate_health("stopping listeners", children, 10000).ready);
}

TEST(Health, AChildThatHasNotReportedSinceItsStartIsStarting) {
    // A restarted child's slot still holds its predecessor's heartbeat.
    std::vector<ChildView> children = {child("listener 0", 10, 9000, 8990)};
    Health h = evaluate_health("running", children, 9001);
    EXPECT_FALSE(h.ready);
    EXPECT_EQ(h.reason, "listener 0 (pid 10): starting");
    children[0].heartbeat_ms = 9050;
    EXPECT_TRUE(evaluate_health("running", children, 9100).ready);
}

TEST(Health, DeadOrSilentChildren) {
    std::vector<ChildView> children = {child("listener 0", 10, 0, 9900), child("output a:1", 0, 0, 0)};
    EXPECT_EQ(evaluate_health("running", children, 10000).reason, "output a:1: not running");
    children[1].expected = false;  // its destination was removed
    EXPECT_TRUE(evaluate_health("running", children, 10000).ready);
    EXPECT_EQ(evaluate_health("running", children, 15001).reason, "listener 0 (pid 10): no heartbeat for 5.1 s");
}

TEST(Health, StaleLimitFollowsStallAndConnectTimeouts) {
    EXPECT_EQ(health_stale_after_ms(false, 30, 3000), 5000);
    EXPECT_EQ(health_stale_after_ms(true, 30, 3000), 5000);
    EXPECT_EQ(health_stale_after_ms(true, 30, 9000), 11000);  // a blocking connect is not a stall
    EXPECT_EQ(health_stale_after_ms(false, 2, 3000), 2000);
}

}  // namespace
}  // namespace polymur
