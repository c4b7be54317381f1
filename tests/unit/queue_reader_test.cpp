// QueueReader, the consumer side of a destination queue: batches as two spans across the wrap with
// their line counts, commit and rewind, repair of a dead consumer's commit lock, reading behind a
// producer that died mid-publish, and wait/wake without a lost wake-up.
#include "shm/queue_reader.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace polymur::shm {
namespace {

constexpr uint64_t kRing = 2 * kPage;  // a multiple of the page size, as every ring is

class QueueReaderTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/polymur-reader-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr) << std::strerror(errno);
        dir_ = pattern;
        std::string error;
        queue_ = QueueFile::open_or_create(dir_ + "/dest.queue", "carbon:2003", {1, kRing}, error);
        ASSERT_TRUE(queue_) << error;
        ASSERT_EQ(queue_->ring_capacity(), kRing);
    }
    void TearDown() override {
        queue_.reset();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    void produce(const std::string& line, int count) {
        RingProducer producer(*queue_, 0, 1u << 30);
        std::string_view part = line;
        for (int i = 0; i < count; ++i) ASSERT_TRUE(producer.append(&part, 1, part.size()));
        producer.publish();
    }
    static std::string text(const ReadBatch& b) { return std::string(b.spans[0]) + std::string(b.spans[1]); }

    std::string dir_;
    std::unique_ptr<QueueFile> queue_;
};

TEST_F(QueueReaderTest, BatchAcrossTheWrapIsTwoSpansWithTheProducersLineCount) {
    const std::string filler(kRing - 10 - 1, 'f');
    produce(filler + "\n", 1);
    QueueReader reader(*queue_);
    ReadBatch batch;
    ASSERT_TRUE(reader.read(0, kRing, batch));
    reader.commit(batch);
    // 10 bytes before the end of the ring: three lines of 7 bytes run across the wrap.
    produce("ab 1 2\n", 3);
    ASSERT_TRUE(reader.read(0, kRing, batch));
    EXPECT_EQ(batch.spans[0].size(), 10u);
    EXPECT_EQ(batch.spans[0].data(), queue_->ring_data(0) + kRing - 10);
    EXPECT_EQ(batch.spans[1].data(), queue_->ring_data(0));
    EXPECT_EQ(text(batch), "ab 1 2\nab 1 2\nab 1 2\n");
    EXPECT_EQ(batch.lines, 3u);
    EXPECT_EQ(batch.start, kRing - 10);
    EXPECT_EQ(batch.end, kRing + 11);
    EXPECT_FALSE(reader.read(0, kRing, batch)) << "nothing more was published";
    EXPECT_TRUE(reader.caught_up());
}

TEST_F(QueueReaderTest, ABatchIsCutAfterItsLastWholeLineAndALongLineGoesAlone) {
    produce("abc 1 2\n", 5);  // 8 bytes a line
    QueueReader reader(*queue_);
    ReadBatch batch;
    ASSERT_TRUE(reader.read(0, 20, batch));
    EXPECT_EQ(text(batch), "abc 1 2\nabc 1 2\n");
    EXPECT_EQ(batch.lines, 2u);
    ASSERT_FALSE(reader.read(0, 5, batch, false)) << "no whole line fits and an oversize line was not wanted";
    ASSERT_TRUE(reader.read(0, 5, batch, true));
    EXPECT_EQ(text(batch), "abc 1 2\n");
    EXPECT_EQ(batch.lines, 1u);
    ASSERT_TRUE(reader.read(0, 1000, batch));
    EXPECT_EQ(batch.lines, 2u);
    EXPECT_EQ(batch.end, 40u);
}

// A batch cut short is counted by the reader itself (16 bytes a step, summed every 255 steps):
// 4500 empty lines in a row (more newlines per byte lane than a byte counter holds), then lines of
// every length from 1 to 40 bytes, each count checked.
TEST_F(QueueReaderTest, TheReaderCountsTheLinesOfABatchItCutsAtEveryLength) {
    RingProducer producer(*queue_, 0, 1u << 30);
    std::vector<uint64_t> ends;  // the end of each line
    uint64_t pos = 0;
    for (size_t len = 1, n = 0; pos + len <= kRing - 64; len = ++n < 4500 ? 1 : len % 40 + 1) {
        const std::string line = std::string(len - 1, 'x') + "\n";
        std::string_view part = line;
        ASSERT_TRUE(producer.append(&part, 1, part.size()));
        ends.push_back(pos += len);
    }
    producer.publish();
    ASSERT_GT(pos, 255u * 16 + 16);
    for (uint64_t max_bytes : {uint64_t(15), uint64_t(16), uint64_t(17), uint64_t(4079), uint64_t(4080), uint64_t(4097),
                               uint64_t(4499), uint64_t(4600), pos - 1}) {
        QueueReader reader(*queue_);
        ReadBatch batch;
        ASSERT_TRUE(reader.read(0, max_bytes, batch));
        const uint64_t whole =
            static_cast<uint64_t>(std::upper_bound(ends.begin(), ends.end(), max_bytes) - ends.begin());
        EXPECT_EQ(batch.lines, whole) << "max_bytes " << max_bytes;
        EXPECT_EQ(batch.end, ends[whole - 1]) << "max_bytes " << max_bytes;
    }
}

TEST_F(QueueReaderTest, CommitGoesThroughTheSequenceLockAndRewindResendsFromTheLastCommit) {
    produce("abc 1 2\n", 4);
    QueueReader reader(*queue_);
    ReadBatch first, second;
    ASSERT_TRUE(reader.read(0, 16, first));
    ASSERT_TRUE(reader.read(0, 16, second));
    EXPECT_TRUE(reader.caught_up());
    const uint64_t seq = queue_->ring(0).commit_seq.load();
    reader.commit(first);
    EXPECT_EQ(queue_->ring(0).commit_seq.load(), seq + 2);
    EXPECT_EQ(queue_->ring(0).read_pos.load(), 16u);
    EXPECT_EQ(queue_->ring(0).lines_read.load(), 2u);
    EXPECT_EQ(queue_->queued_lines(), 2u);
    // The connection was lost before the second batch was confirmed: it is read again.
    reader.rewind();
    EXPECT_FALSE(reader.caught_up());
    ReadBatch again;
    ASSERT_TRUE(reader.read(0, 1000, again));
    EXPECT_EQ(again.start, second.start);
    EXPECT_EQ(again.end, second.end);
    EXPECT_EQ(again.lines, 2u);
    reader.commit(again);
    EXPECT_EQ(queue_->queued_lines(), 0u);
    EXPECT_EQ(queue_->queued_bytes(), 0u);
}

TEST_F(QueueReaderTest, AConsumerKilledInsideItsCommitIsRepairedOnAttach) {
    produce("x 1 2\n", 5);
    {
        QueueReader reader(*queue_);
        ReadBatch batch;
        ASSERT_TRUE(reader.read(0, 6, batch));
        reader.commit(batch);
    }
    // Killed between the two stores of a commit of 3 lines: the count moved, the position did not.
    RingControl& ring = queue_->ring(0);
    ring.commit_seq.store(ring.commit_seq.load() + 1);
    ring.lines_read.store(ring.lines_read.load() + 3);
    QueueReader successor(*queue_);
    EXPECT_EQ(ring.commit_seq.load() % 2, 0u) << "the commit lock is released";
    EXPECT_EQ(ring.read_pos.load(), 6u);
    EXPECT_EQ(ring.lines_read.load(), 1u) << "the count matches the position again";
    EXPECT_EQ(queue_->queued_lines(), 4u);
    ReadBatch batch;
    ASSERT_TRUE(successor.read(0, kRing, batch));
    EXPECT_EQ(batch.start, 6u);
    EXPECT_EQ(batch.lines, 4u);
    successor.commit(batch);
    EXPECT_EQ(queue_->queued_lines(), 0u);
}

TEST_F(QueueReaderTest, BehindAProducerThatDiedMidPublishTheLinesAreCountedFromTheRing) {
    produce("x 1 2\n", 5);
    RingControl& ring = queue_->ring(0);
    // Died between the two stores of a publish: the count moved on, the position did not.
    ring.publish_seq.store(ring.publish_seq.load() + 1);
    ring.lines_written.store(ring.lines_written.load() + 7);
    QueueReader reader(*queue_);
    ReadBatch batch;
    ASSERT_TRUE(reader.read(0, kRing, batch));
    EXPECT_EQ(batch.end, 30u);
    EXPECT_EQ(batch.lines, 5u) << "not the 12 the unfinished publish claims";
}

// The window a wake-up could be lost in: the consumer found the ring empty, then a producer
// published while the consumer was not yet announced as waiting (so nobody woke it).
TEST_F(QueueReaderTest, APublishBetweenAnEmptyReadAndTheWaitIsNotSleptThrough) {
    QueueReader reader(*queue_);
    ReadBatch batch;
    ASSERT_FALSE(reader.read(0, kRing, batch));
    const uint32_t wake_seq = queue_->header().wake_seq.load();
    produce("x 1 2\n", 1);
    EXPECT_EQ(queue_->header().wake_seq.load(), wake_seq) << "no consumer was waiting, so none was woken";
    const auto start = std::chrono::steady_clock::now();
    reader.wait(5000, [] { return true; });
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_EQ(queue_->header().consumer_waiting.load(), 0u);
    ASSERT_TRUE(reader.read(0, kRing, batch));
    EXPECT_EQ(batch.lines, 1u);
}

// Stress, ping-pong: the producer publishes one line and waits until the consumer committed it. A
// wake-up lost between the consumer's emptiness check and its sleep would cost a round 10 s.
TEST_F(QueueReaderTest, EveryPublishWakesTheWaitingConsumer) {
    constexpr int kRounds = 3000;
    std::string error;
    auto producer_view = QueueFile::open(dir_ + "/dest.queue", error);
    ASSERT_TRUE(producer_view) << error;
    std::atomic<int64_t> slowest_ms {0};
    std::thread consumer([&] {
        QueueReader reader(*queue_);
        ReadBatch batch;
        for (int got = 0; got < kRounds;) {
            const auto before = std::chrono::steady_clock::now();
            while (!reader.read(0, kRing, batch)) reader.wait(10000, [] { return true; });
            const int64_t ms =
                std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - before)
                    .count();
            if (ms > slowest_ms) slowest_ms = ms;
            got += static_cast<int>(batch.lines);
            reader.commit(batch);
        }
    });
    RingProducer producer(*producer_view, 0, 1u << 30);
    std::string_view line = "p 1 2\n";
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < kRounds; ++i) {
        ASSERT_TRUE(producer.append(&line, 1, line.size()));
        producer.publish();
        while (producer_view->ring(0).lines_read.load(std::memory_order_acquire) < static_cast<uint64_t>(i + 1))
            std::this_thread::yield();
    }
    consumer.join();
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
    EXPECT_LT(slowest_ms.load(), 5000) << "a wake-up was lost: the consumer slept through a publish";
    EXPECT_EQ(queue_->queued_lines(), 0u);
}

}  // namespace
}  // namespace polymur::shm
