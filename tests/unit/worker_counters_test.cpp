// supervisor/worker_counters: the one sum of the listener workers' counters.
#include "supervisor/worker_counters.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <memory>

namespace polymur {
namespace {

TEST(WorkerCounters, SumsTheCountedWorkersAndTakesTheLatestUdpDrops) {
    auto memory = std::make_unique<unsigned char[]>(sizeof(shm::ControlSegment) + 64);
    void* aligned = memory.get() + (64 - reinterpret_cast<uintptr_t>(memory.get()) % 64) % 64;
    std::memset(aligned, 0, sizeof(shm::ControlSegment));
    shm::ControlSegment* control = shm::init_control(aligned, 3);
    for (uint32_t i = 0; i < 3; ++i) {
        shm::WorkerSlot& w = control->workers[i];
        w.received = 100 * (i + 1);
        w.invalid = 1;
        w.too_long = 2;
        w.unroutable = 3;
        w.connections = 4;
        w.connections_total = 5;
        w.pickle_invalid = 6;
        w.udp_datagrams = 7;
        w.udp_dropped_seen = 10 + i * (i == 1 ? 5 : 1);  // 10, 15, 12: the newest reading is the largest
    }
    control->workers[3].received = 1000000;  // beyond the workers asked for: not counted

    RelayStatus s;
    s.received = 1;  // added to, not overwritten
    add_worker_counters(*control, 3, s);
    EXPECT_EQ(s.received, 1u + 100 + 200 + 300);
    EXPECT_EQ(s.invalid, 3u);
    EXPECT_EQ(s.too_long, 6u);
    EXPECT_EQ(s.unroutable, 9u);
    EXPECT_EQ(s.connections, 12u);
    EXPECT_EQ(s.connections_total, 15u);
    EXPECT_EQ(s.pickle_invalid, 18u);
    EXPECT_EQ(s.udp_datagrams, 21u);
    EXPECT_EQ(s.udp_dropped, 15u);
}

}  // namespace
}  // namespace polymur
