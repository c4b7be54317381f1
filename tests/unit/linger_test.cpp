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
    for (int64_t t = 1; t < 100; ++t) EXPECT_EQ(linger.after_round(t * kMs, 100, false), 0);
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
    // Many lines at once, 50 ms apart: never within a few periods of the last ones.
    for (int64_t t = 1000; t < 2000; t += 50) EXPECT_EQ(linger.after_round(t * kMs, 1000, false), 0) << t;
}

TEST(Linger, ATrickleGoesOutAsItComes) {
    // 250 lines a second, one every 4 ms (about one a period): lingering would save no wake-up.
    Linger linger(5, 0);
    for (int64_t t = 1000 * kMs; t < 2000 * kMs; t += 4 * kMs) EXPECT_EQ(linger.after_round(t, 1, false), 0) << t;
    // 1,000 a second (five a period) linger, once the rate is known.
    int64_t t = 2000 * kMs;
    for (; t < 2010 * kMs; t += kMs) linger.after_round(t, 1, false);
    EXPECT_EQ(linger.after_round(t, 1, false), 2015 * kMs);
}

TEST(Linger, DenseLinesLingerUntilTheNextPeriodThenTwiceMoreWhenTheyStop) {
    Linger linger(10, 0);
    EXPECT_EQ(linger.after_round(1001 * kMs, 100, false), 0);  // nothing to judge the rate by yet
    for (int64_t t = 1004; t < 1020; t += 4) EXPECT_EQ(linger.after_round(t * kMs, 100, false), 0) << t;
    EXPECT_EQ(linger.after_round(1021 * kMs, 100, false), 1030 * kMs);  // two periods at 500 lines
    EXPECT_EQ(linger.after_round(1030 * kMs + 300000, 100, false), 1040 * kMs);
    EXPECT_EQ(linger.after_round(1040 * kMs + 300000, 100, false), 1050 * kMs);
    // A sleep that overran by more than a period (a busy machine) still finds lines coming.
    EXPECT_EQ(linger.after_round(1063 * kMs, 100, false), 1070 * kMs);
    // Nothing came in the last period: keep the cadence twice, then wait for lines as usual.
    EXPECT_EQ(linger.after_round(1070 * kMs + 300000, 0, false), 1080 * kMs);
    EXPECT_EQ(linger.after_round(1080 * kMs + 300000, 0, false), 1090 * kMs);
    EXPECT_EQ(linger.after_round(1090 * kMs + 300000, 0, false), 0);
    EXPECT_EQ(linger.after_round(1200 * kMs, 0, false), 0);
    // Lines after a long quiet go out at once.
    EXPECT_EQ(linger.after_round(1300 * kMs, 100, false), 0);
}

TEST(Linger, ABusyRoundStopsLingeringForAWhile) {
    Linger linger(10, 0);
    int64_t t = 1000 * kMs;
    for (; t < 1021 * kMs; t += kMs) linger.after_round(t, 100, false);
    EXPECT_NE(linger.after_round(t, 100, false), 0);
    // A filled read buffer, a backlog, a full round: full speed or backpressure, never a linger.
    EXPECT_EQ(linger.after_round(t, 100, true), 0);
    // Small rounds right after (a full queue makes rounds small too) do not linger either ...
    const int64_t busy_at = t;
    for (; t < busy_at + Linger::kCalmNs; t += kMs / 10) EXPECT_EQ(linger.after_round(t, 100, false), 0);
    EXPECT_EQ(linger.after_round(t - kMs / 10, 0, false), 0);  // nor keeps a cadence
    // ... until the calm period has passed with no busy round in it.
    EXPECT_NE(linger.after_round(t + kMs, 100, false), 0);
}

TEST(Linger, BusyRoundsInterleavedWithSmallOnesNeverLinger) {
    // A queue filled to the brim: every other round is small, every other busy.
    Linger linger(5, 1);
    for (int64_t t = 1000 * kMs; t < 1500 * kMs; t += kMs / 4) {
        const bool busy = (t / (kMs / 4)) % 2 == 0;
        EXPECT_EQ(linger.after_round(t, 500, busy), 0);
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
