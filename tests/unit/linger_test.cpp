// worker/linger.hpp: when a listener or output lingers, and until when.
#include "worker/linger.hpp"

#include <gtest/gtest.h>

#include "common/clock.hpp"

namespace polymur {
namespace {

constexpr int64_t kMs = 1000000;

TEST(Linger, OffNeverLingers) {
    Linger linger(0, 0);
    EXPECT_FALSE(linger.enabled());
    for (int64_t t = 1; t < 100; ++t) EXPECT_EQ(linger.after_round(t * kMs, true, false), 0);
}

TEST(Linger, WakesOnTheGridOfPeriodsAtItsPhase) {
    Linger listener(10, 0), output(10, Linger::output_phase_ms(10));
    EXPECT_EQ(Linger::output_phase_ms(10), 2u);
    EXPECT_EQ(Linger::output_phase_ms(1), 0u);
    EXPECT_EQ(Linger::output_phase_ms(3), 1u);
    EXPECT_EQ(listener.next_wake(1003 * kMs), 1010 * kMs);
    EXPECT_EQ(listener.next_wake(1010 * kMs), 1020 * kMs);  // strictly after
    EXPECT_EQ(output.next_wake(1003 * kMs), 1012 * kMs);
    EXPECT_EQ(output.next_wake(1013 * kMs), 1022 * kMs);
    EXPECT_EQ(output.next_wake(1 * kMs), 2 * kMs);
}

TEST(Linger, SparseLinesGoOutAsTheyCome) {
    Linger linger(10, 0);
    // Lines 50 ms apart: never within a period of the last ones.
    for (int64_t t = 1000; t < 2000; t += 50) EXPECT_EQ(linger.after_round(t * kMs, true, false), 0) << t;
}

TEST(Linger, DenseLinesLingerUntilTheNextPeriodThenOnceMoreWhenTheyStop) {
    Linger linger(10, 0);
    EXPECT_EQ(linger.after_round(1001 * kMs, true, false), 0);  // the first lines: nothing to judge by
    EXPECT_EQ(linger.after_round(1004 * kMs, true, false), 1010 * kMs);
    EXPECT_EQ(linger.after_round(1010 * kMs + 300000, true, false), 1020 * kMs);
    EXPECT_EQ(linger.after_round(1020 * kMs + 300000, true, false), 1030 * kMs);
    // A sleep that overran by more than a period (a busy machine) still finds lines coming.
    EXPECT_EQ(linger.after_round(1043 * kMs, true, false), 1050 * kMs);
    // Nothing came in the last period: keep the cadence twice, then wait for lines as usual.
    EXPECT_EQ(linger.after_round(1030 * kMs + 300000 + 20 * kMs, false, false), 1060 * kMs);
    EXPECT_EQ(linger.after_round(1060 * kMs + 300000, false, false), 1070 * kMs);
    EXPECT_EQ(linger.after_round(1070 * kMs + 300000, false, false), 0);
    EXPECT_EQ(linger.after_round(1200 * kMs, false, false), 0);
    // Lines after a long quiet go out at once.
    EXPECT_EQ(linger.after_round(1300 * kMs, true, false), 0);
}

TEST(Linger, ABusyRoundStopsLingeringForAWhile) {
    Linger linger(10, 0);
    linger.after_round(1000 * kMs, true, false);
    EXPECT_NE(linger.after_round(1002 * kMs, true, false), 0);
    // A filled read buffer, a backlog, a full round: full speed or backpressure, never a linger.
    EXPECT_EQ(linger.after_round(1010 * kMs, true, true), 0);
    // Small rounds right after (a full queue makes rounds small too) do not linger either ...
    int64_t t = 1010 * kMs;
    for (; t < 1010 * kMs + Linger::kCalmNs; t += kMs / 10) EXPECT_EQ(linger.after_round(t, true, false), 0);
    EXPECT_EQ(linger.after_round(t - kMs / 10, false, false), 0);  // nor keeps a cadence
    // ... until the calm period has passed with no busy round in it.
    EXPECT_NE(linger.after_round(t + kMs, true, false), 0);
}

TEST(Linger, BusyRoundsInterleavedWithSmallOnesNeverLinger) {
    // A queue filled to the brim: every other round is small, every other busy.
    Linger linger(5, 1);
    for (int64_t t = 1000 * kMs; t < 1500 * kMs; t += kMs / 4) {
        const bool busy = (t / (kMs / 4)) % 2 == 0;
        EXPECT_EQ(linger.after_round(t, true, busy), 0);
    }
}

TEST(Linger, SleepsUntilThePoint) {
    Linger linger(2, 0);
    const int64_t start = monotonic_ns();
    const int64_t until = linger.next_wake(start);
    sleep_until_ns(until);
    const int64_t end = monotonic_ns();
    EXPECT_GE(end, until);
    EXPECT_LE(until - start, 2 * kMs);
}

}  // namespace
}  // namespace polymur
