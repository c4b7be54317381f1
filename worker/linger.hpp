#pragma once
// Adaptive lingering (--linger-ms; docs/PERFORMANCE.md, "Idling"). At moderate rates a listener or an output
// wakes for a line or a few, and the wake-up costs far more than the lines (20-45 us of CPU on the VM of
// docs/PERFORMANCE.md). While lines keep coming, a loop therefore lingers: it sleeps until the next point of a
// grid of --linger-ms periods on the monotonic clock before its next round, so it wakes once a period
// however the lines arrive. Every listener wakes at the start of a period and every output a little
// after (its phase), so an output finds what all the listeners published at the period's start in one
// round, and a line waits at most about one period plus the output's phase in all.
//
// A loop never lingers when it runs at full speed or is held back: a round that filled a read buffer,
// took a large amount or found a backlog (the caller's `busy`) turns lingering off for kCalmNs, so a
// relay delivering as fast as it can never sleeps between rounds. Sparse lines (further apart than
// kDensePeriods periods) go out as they come, and so does a trickle (fewer than kMinLines a period, a
// wake-up or less a period): a sleep until a point costs a wake-up as well, so lingering then saves
// nothing and only adds latency.
#include <cstdint>

namespace polymur {

class Linger {
public:
    // A consumer this far behind its producers is a backlog: the round is busy (listeners and outputs alike).
    static constexpr uint64_t kBacklogBytes = 1 << 20;
    // After a busy round, no lingering for this long.
    static constexpr int64_t kCalmNs = 50 * 1000000LL;
    // Lines within this many periods of the last ones keep coming (a loop's sleep overruns its point on a
    // busy machine, and a listener may have had nothing in one period).
    static constexpr int64_t kDensePeriods = 3;
    // Rounds without lines that keep the cadence before the loop waits for lines as usual.
    static constexpr int kCadenceRounds = 2;
    // Lines a period, on average over the last window of kRatePeriods periods or more, below which a loop
    // does not linger.
    static constexpr uint64_t kMinLines = 2;
    static constexpr int64_t kRatePeriods = 2;

    // `linger_ms` 0: never linger. `phase_ms`: how far into each period this loop wakes.
    Linger(uint32_t linger_ms, uint32_t phase_ms);

    // The phase of an output: a quarter of the period, at least 1 ms (less than the period).
    static uint32_t output_phase_ms(uint32_t linger_ms);

    bool enabled() const { return period_ns_ > 0; }

    // After a round that ended at `now_ns` (monotonic): it read or wrote `lines`, `busy` it ran at full
    // speed or found a backlog. Returns the monotonic time to sleep until before the next round, or 0 to go
    // on at once (busy) or wait for lines as usual.
    int64_t after_round(int64_t now_ns, uint64_t lines, bool busy);

    // The grid point this loop wakes at next, strictly after `now_ns`.
    int64_t next_wake(int64_t now_ns) const;

private:
    int64_t period_ns_;
    int64_t phase_ns_;
    int64_t last_lines_ns_ = 0;    // when a round last had lines (0: never)
    int64_t calm_from_ns_ = 0;     // no lingering before this (set by a busy round)
    int cadence_ = 0;              // empty rounds that still keep the cadence
    int64_t window_start_ns_ = 0;  // the rate: lines since this point ...
    uint64_t window_lines_ = 0;
    bool rate_ok_ = false;  // ... came at kMinLines a period or more in the last window
};

// Sleeps until `when_ns` of the monotonic clock (common/clock.hpp monotonic_ns).
void sleep_until_ns(int64_t when_ns);

}  // namespace polymur
