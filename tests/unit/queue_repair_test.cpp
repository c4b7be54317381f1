// Queue files against hostile or unlucky states (issue 10): a header whose sizes overflow, a
// consumer or producer that died inside its sequence lock, a line longer than any producer may
// write, and the wake-up handshake between a producer and a sleeping consumer.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "shm/queue.hpp"
#include "temp_dir.hpp"

namespace polymur::shm {
namespace {

class QueueRepairTest : public ::testing::Test {
protected:
    std::unique_ptr<QueueFile> create(QueueGeometry g) {
        std::string error;
        auto q = QueueFile::open_or_create(path_, "carbon:2003", g, error);
        EXPECT_TRUE(q) << error;
        return q;
    }
    static void append_lines(RingProducer& p, std::string_view line, int count) {
        for (int i = 0; i < count; ++i) ASSERT_TRUE(p.append(&line, 1, line.size()));
        p.publish();
    }
    // Runs `body` in a child process; false if it had not finished after `seconds` (then killed).
    static bool finishes_within(int seconds, const std::function<void()>& body) {
        pid_t pid = fork();
        if (pid == 0) {
            body();
            _exit(0);
        }
        for (int i = 0; i < seconds * 100; ++i) {
            int status = 0;
            if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
            usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        return false;
    }

    test::TempDir dir_ {"polymur-repair"};
    std::string path_ = dir_.path() + "/dest.queue";
};

// --- header arithmetic ----------------------------------------------------------------------------

// 2 rings of 2^63 bytes: ring_count x ring_capacity wraps to 0, so the expected size came out as
// the 8192 bytes of header and ring controls, and a tiny file of that size passed the check.
TEST_F(QueueRepairTest, HeaderWhoseSizesOverflowIsRefused) {
    QueueHeader header {};
    header.magic = kQueueMagic;
    header.layout_version = kQueueLayoutVersion;
    header.header_size = sizeof(QueueHeader);
    header.ring_control_size = sizeof(RingControl);
    header.ring_count = 2;
    header.ring_capacity = uint64_t(1) << 63;
    header.file_size = 2 * kPage;  // what the wrapped arithmetic computed
    std::string bytes(header.file_size, '\0');
    std::memcpy(bytes.data(), &header, sizeof header);
    std::ofstream(path_, std::ios::binary) << bytes;
    // Kept as a seed for the queue-file fuzz target.
    const std::string seed = std::string(POLYMUR_SOURCE_DIR) + "/tests/data/regress/queue/two-rings-of-2pow63.queue";
    std::ifstream kept(seed, std::ios::binary);
    ASSERT_TRUE(kept) << seed;
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), bytes)
        << seed << " differs from the case tested here";

    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find("corrupt header"), std::string::npos) << error;
    EXPECT_NE(error.find(path_), std::string::npos) << error;
}

TEST_F(QueueRepairTest, HeaderWithHugeCapacityTimesOneRingIsRefused) {
    for (uint64_t capacity : {uint64_t(1) << 63, uint64_t(1) << 62, uint64_t(1) << 48}) {
        {
            auto q = create({1, 1 << 20});
            ASSERT_TRUE(q);
            q->header().ring_capacity = capacity;
        }
        std::string error;
        EXPECT_FALSE(QueueFile::open(path_, error)) << capacity;
        std::filesystem::remove(path_);
    }
}

// --- sequence locks -------------------------------------------------------------------------------

// The output died between the two stores of commit_read (commit_seq odd, lines_read moved on,
// read_pos not), and a listener died inside publish: the next listener found an odd publish_seq,
// waited for an even commit_seq that nobody would ever write, and spun in its constructor forever.
TEST_F(QueueRepairTest, BothSidesDeadInsideTheirLocksAreRepairedWithoutSpinning) {
    auto q = create({1, 4096});
    ASSERT_TRUE(q);
    const std::string_view line = "a.b 1 2\n";  // 8 bytes
    {
        RingProducer producer(*q, 0, 1000);
        append_lines(producer, line, 6);
    }
    commit_read(q->ring(0), 16, 2);
    RingControl& ring = q->ring(0);
    ring.commit_seq.store(ring.commit_seq.load() + 1);    // consumer: first store of a commit of 1 line
    ring.lines_read.store(ring.lines_read.load() + 1);    //   ... lines_read moved, read_pos did not
    ring.publish_seq.store(ring.publish_seq.load() + 1);  // producer: died inside publish
    ring.lines_written.store(ring.lines_written.load() + 5);

    auto started = std::chrono::steady_clock::now();
    ASSERT_TRUE(finishes_within(10, [&] { RingProducer successor(*q, 0, 1000); }))
        << "a producer whose predecessor and consumer both died inside their locks spun forever";
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));
    RingProducer successor(*q, 0, 1000);  // the real repair, in this process
    EXPECT_EQ(ring.publish_seq.load() % 2, 0u);
    EXPECT_EQ(q->queued_lines(), 4u) << "lines between read_pos and write_pos";

    repair_commit(*q);  // what a new output does once it holds the queue's lock
    EXPECT_EQ(ring.commit_seq.load() % 2, 0u);
    EXPECT_EQ(q->queued_lines(), 4u);
    uint64_t write_pos = 0, lines = 0;
    ASSERT_TRUE(read_published(ring, write_pos, lines));
    EXPECT_EQ(write_pos, 48u);
    EXPECT_EQ(lines - ring.lines_read.load(), 4u);
    // Both sides work normally afterwards.
    commit_read(ring, 24, 1);
    EXPECT_EQ(q->queued_lines(), 3u);
    append_lines(successor, line, 2);
    EXPECT_EQ(q->queued_lines(), 5u);
}

TEST_F(QueueRepairTest, ConsumerDeadInsideCommitIsRepairedByTheNextConsumer) {
    auto q = create({2, 4096});
    ASSERT_TRUE(q);
    const std::string_view line = "c.d 1 2\n";
    RingProducer producer(*q, 1, 1000);
    append_lines(producer, line, 5);
    RingControl& ring = q->ring(1);
    ring.commit_seq.store(ring.commit_seq.load() + 1);
    ring.lines_read.store(ring.lines_read.load() + 3);  // read_pos still 0: 5 lines are queued
    repair_commit(*q);
    EXPECT_EQ(ring.commit_seq.load() % 2, 0u);
    EXPECT_EQ(q->queued_lines(), 5u);
    EXPECT_EQ(q->ring(0).commit_seq.load(), 0u) << "a ring with an even sequence is left alone";
}

// --- the bound on a queued line -------------------------------------------------------------------

TEST_F(QueueRepairTest, NoProducerAppendsALineLongerThanTheBound) {
    auto q = create({1, 4 << 20});
    ASSERT_TRUE(q);
    RingProducer producer(*q, 0, 1000);
    std::string longest(kMaxQueuedLine - 1, 'x');
    longest += '\n';
    std::string_view part = longest;
    EXPECT_TRUE(producer.append(&part, 1, part.size()));
    std::string longer = "y" + longest;
    part = longer;
    EXPECT_FALSE(producer.append(&part, 1, part.size()));
    producer.publish();
    EXPECT_EQ(q->queued_lines(), 1u);
    EXPECT_EQ(q->dropped_lines(), 1u);
}

// --- wake-ups -------------------------------------------------------------------------------------

// Ping-pong between a producer and a consumer that sleeps whenever the ring is empty. A lost
// wake-up (both sides missing the other's store) leaves the consumer asleep with data waiting
// until its 2 s timeout: a wait over 1 s whose line had been published (and recorded as such)
// more than 500 ms before the consumer woke. A producer that was merely descheduled is not that.
TEST_F(QueueRepairTest, NoWakeUpIsLostBetweenPublishAndSleep) {
    auto q = create({1, 1 << 20});
    ASSERT_TRUE(q);
    std::string error;
    auto producer_view = QueueFile::open(path_, error);
    ASSERT_TRUE(producer_view) << error;
    constexpr uint64_t kRounds = 400000;
    const auto budget = std::chrono::seconds(20);
    std::atomic<uint64_t> consumed {0};
    std::atomic<uint64_t> published_round {0};
    std::atomic<int64_t> published_at_ns {0};
    std::atomic<bool> stop {false};
    auto now_ns = [] {
        return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    };
    std::thread producer([&] {
        RingProducer p(*producer_view, 0, ~uint64_t(0));
        const std::string_view line = "w\n";
        for (uint64_t i = 0; i < kRounds && !stop.load(); ++i) {
            while (consumed.load(std::memory_order_acquire) < i && !stop.load()) {}
            if (!p.has_room(line.size())) p.refresh();
            p.append(&line, 1, line.size());
            p.publish();
            published_at_ns.store(now_ns(), std::memory_order_relaxed);
            published_round.store(i + 1, std::memory_order_release);
        }
    });
    RingControl& ring = q->ring(0);
    uint64_t pos = 0, lost = 0, rounds = 0;
    const auto started = std::chrono::steady_clock::now();
    while (rounds < kRounds && std::chrono::steady_clock::now() - started < budget) {
        uint64_t write_pos = ring.write_pos.load(std::memory_order_acquire);
        if (write_pos != pos) {
            pos = write_pos;
            commit_read(ring, pos, 1);
            consumed.store(++rounds, std::memory_order_release);
            continue;
        }
        const auto before = std::chrono::steady_clock::now();
        q->wait_for_data(2000, [&] { return ring.write_pos.load(std::memory_order_acquire) == pos; });
        if (std::chrono::steady_clock::now() - before > std::chrono::seconds(1) &&
            published_round.load(std::memory_order_acquire) == rounds + 1 &&
            now_ns() - published_at_ns.load(std::memory_order_relaxed) > 500'000'000) {
            ++lost;
            break;
        }
    }
    stop = true;
    producer.join();
    EXPECT_EQ(lost, 0u) << "the consumer slept through a publish (after " << rounds << " rounds)";
    EXPECT_GT(rounds, 1000u) << "too few rounds to mean anything";
}

}  // namespace
}  // namespace polymur::shm
