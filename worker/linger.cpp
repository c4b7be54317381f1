#include "worker/linger.hpp"

#include <cerrno>
#include <ctime>

namespace polymur {

Linger::Linger(uint32_t linger_ms, uint32_t phase_ms)
        : period_ns_(static_cast<int64_t>(linger_ms) * 1000000LL),
          phase_ns_(linger_ms ? static_cast<int64_t>(phase_ms % linger_ms) * 1000000LL : 0) {}

uint32_t Linger::output_phase_ms(uint32_t linger_ms) {
    if (linger_ms < 2) return 0;
    const uint32_t quarter = linger_ms / 4;
    return quarter ? quarter : 1;
}

int64_t Linger::next_wake(int64_t now_ns) const {
    const int64_t since = now_ns - phase_ns_;
    const int64_t periods = since >= 0 ? since / period_ns_ + 1 : 0;
    return periods * period_ns_ + phase_ns_;
}

int64_t Linger::after_round(int64_t now_ns, uint64_t lines, bool busy) {
    if (!period_ns_) return 0;
    window_lines_ += lines;
    const int64_t window = now_ns - window_start_ns_;
    if (window >= kRatePeriods * period_ns_) {
        rate_ok_ = window_lines_ * static_cast<uint64_t>(period_ns_) >= kMinLines * static_cast<uint64_t>(window);
        window_start_ns_ = now_ns;
        window_lines_ = 0;
    }
    const bool got = lines > 0;
    if (busy) {
        calm_from_ns_ = now_ns + kCalmNs;
        last_lines_ns_ = now_ns;
        cadence_ = 0;
        return 0;
    }
    const bool calm = now_ns >= calm_from_ns_ && rate_ok_;
    if (!got) {
        // Lines were coming a period ago and may be between their senders' rounds: a period or two more
        // keeps the cadence (a wake-up a period) instead of a futex wake-up for the next publish, off the
        // grid, and a linger after it.
        if (cadence_ <= 0 || !calm) {
            cadence_ = 0;
            return 0;
        }
        --cadence_;
        return next_wake(now_ns);
    }
    const bool dense = last_lines_ns_ && now_ns - last_lines_ns_ <= kDensePeriods * period_ns_;
    last_lines_ns_ = now_ns;
    cadence_ = dense && calm ? kCadenceRounds : 0;
    return cadence_ ? next_wake(now_ns) : 0;
}

void sleep_until_ns(int64_t when_ns) {
    struct timespec until = {static_cast<time_t>(when_ns / 1000000000LL), static_cast<long>(when_ns % 1000000000LL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr) == EINTR) {}
}

}  // namespace polymur
