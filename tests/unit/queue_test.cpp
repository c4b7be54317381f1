#include "shm/queue.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"
#include "shm/control.hpp"
#include "shm/queue_reader.hpp"

namespace polymur::shm {
namespace {

constexpr uint64_t kSmallRing = 4096;

class QueueTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/polymur-unit-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr) << std::strerror(errno);
        dir_ = pattern;
        path_ = dir_ + "/dest.queue";
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    std::unique_ptr<QueueFile> create(QueueGeometry g, std::string_view destination = "carbon:2003") {
        std::string error;
        auto q = QueueFile::open_or_create(path_, destination, g, error);
        EXPECT_TRUE(q) << error;
        EXPECT_EQ(error, "");
        return q;
    }

    static off_t file_size(const std::string& path) {
        struct stat st = {};
        if (stat(path.c_str(), &st) != 0) return -1;
        return st.st_size;
    }

    static std::string read_file(const std::string& path) {
        std::ifstream in(path, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    static void write_file(const std::string& path, const std::string& content) {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
    }

    // What an output does once the destination accepted `bytes` bytes holding `lines` lines: the
    // consumer reads them through a QueueReader and commits them.
    static void consume(QueueFile& q, uint32_t ring, uint64_t bytes, uint64_t lines) {
        QueueReader reader(q);
        ReadBatch batch;
        ASSERT_TRUE(reader.read(ring, bytes, batch));
        ASSERT_EQ(batch.bytes(), bytes);
        ASSERT_EQ(batch.lines, lines);
        reader.commit(batch);
    }

    // Reads `size` bytes at stream position `pos` of a ring, following the wrap like the consumer.
    static std::string read_ring(QueueFile& q, uint32_t ring, uint64_t pos, uint64_t size) {
        const char* data = q.ring_data(ring);
        std::string out;
        for (uint64_t i = 0; i < size; ++i) out += data[(pos + i) % q.ring_capacity()];
        return out;
    }

    static bool append(RingProducer& p, const std::string& line) {
        std::string_view part = line;
        return p.append(&part, 1, line.size());
    }

    std::string dir_;
    std::string path_;
};

// --- geometry -----------------------------------------------------------------------------------

TEST(QueueGeometryFor, RingCountIsProducerCount) {
    EXPECT_EQ(geometry_for(1, 256ull << 20).ring_count, 1u);
    EXPECT_EQ(geometry_for(5, 256ull << 20).ring_count, 5u);
    EXPECT_EQ(geometry_for(65, 256ull << 20).ring_count, 65u);
}

TEST(QueueGeometryFor, WholeFileTakesQueueBytes) {
    // 256 MiB with 3 rings (2 workers): header and ring controls take 2 pages, the rest is shared.
    EXPECT_EQ(geometry_for(3, 256ull << 20).ring_capacity, ((256ull << 20) - 8192) / 3 / 4096 * 4096);
    EXPECT_EQ(geometry_for(4, 256ull << 20).ring_capacity, ((256ull << 20) - 8192) / 4 / 4096 * 4096);
    EXPECT_EQ(queue_file_size(geometry_for(1, 8ull << 30)), 8ull << 30);
}

TEST(QueueGeometryFor, CapacityIsAtLeastOneMebibyte) {
    EXPECT_EQ(geometry_for(1, 100).ring_capacity, 1ull << 20);
    EXPECT_EQ(geometry_for(65, 4ull << 20).ring_capacity, 1ull << 20);
}

TEST(QueueGeometryFor, WholePagesAndNeverAboveQueueBytesUnlessMinimum) {
    for (uint32_t producers : {1u, 2u, 3u, 7u, 16u, 33u, 65u}) {
        for (uint64_t bytes : {4ull << 20, 5000000ull, 256ull << 20, 1000000007ull}) {
            QueueGeometry g = geometry_for(producers, bytes);
            EXPECT_EQ(g.ring_count, producers);
            EXPECT_EQ(g.ring_capacity % 4096, 0u) << producers << " " << bytes;
            if (g.ring_capacity > (1u << 20)) {
                EXPECT_LE(queue_file_size(g), bytes);
                EXPECT_GT(queue_file_size(g) + producers * 4096, bytes);  // less than a page per ring unused
            } else {
                EXPECT_EQ(g.ring_capacity, 1ull << 20);
            }
        }
    }
}

// --- create / reopen -----------------------------------------------------------------------------

TEST_F(QueueTest, CreateWritesHeaderAndSizesFile) {
    const int64_t before = realtime_ns();
    auto q = create({2, kSmallRing}, "carbon:2003:a");
    ASSERT_TRUE(q);
    EXPECT_EQ(q->path(), path_);
    const QueueHeader& h = q->header();
    EXPECT_EQ(h.magic, kQueueMagic);
    EXPECT_EQ(h.layout_version, kQueueLayoutVersion);
    EXPECT_EQ(h.header_size, sizeof(QueueHeader));
    EXPECT_EQ(h.ring_control_size, sizeof(RingControl));
    EXPECT_EQ(h.ring_count, 2u);
    EXPECT_EQ(h.ring_capacity, kSmallRing);
    EXPECT_EQ(q->ring_count(), 2u);
    EXPECT_EQ(q->ring_capacity(), kSmallRing);
    // One page of header, one page of ring controls, then the rings.
    EXPECT_EQ(h.file_size, 4096u + 4096u + 2 * kSmallRing);
    EXPECT_EQ(file_size(path_), static_cast<off_t>(h.file_size));
    EXPECT_STREQ(h.destination, "carbon:2003:a");
    EXPECT_GE(h.created_unix_ns, before);
    EXPECT_LE(h.created_unix_ns, realtime_ns());
    for (uint32_t i = 0; i < 2; ++i) {
        EXPECT_EQ(q->ring(i).write_pos.load(), 0u);
        EXPECT_EQ(q->ring(i).lines_written.load(), 0u);
        EXPECT_EQ(q->ring(i).dropped_full.load(), 0u);
        EXPECT_EQ(q->ring(i).read_pos.load(), 0u);
        EXPECT_EQ(q->ring(i).lines_read.load(), 0u);
    }
    EXPECT_EQ(q->ring_data(1) - q->ring_data(0), static_cast<ptrdiff_t>(kSmallRing));
    EXPECT_EQ(q->queued_lines(), 0u);
    EXPECT_EQ(q->queued_bytes(), 0u);
    EXPECT_EQ(q->dropped_lines(), 0u);
    struct stat st = {};
    ASSERT_EQ(stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(QueueTest, ManyRingControlsSpillIntoMorePages) {
    // 65 rings * 128 bytes = 8320 bytes of ring controls: three pages.
    auto q = create({65, kSmallRing});
    ASSERT_TRUE(q);
    EXPECT_EQ(q->header().file_size, 4096u + 3 * 4096u + 65 * kSmallRing);
    EXPECT_EQ(file_size(path_), static_cast<off_t>(q->header().file_size));
}

TEST_F(QueueTest, LongDestinationIsTruncatedAndTerminated) {
    const std::string destination(400, 'd');
    auto q = create({1, kSmallRing}, destination);
    ASSERT_TRUE(q);
    EXPECT_EQ(std::string(q->header().destination), std::string(kDestinationTextMax - 1, 'd'));
}

TEST_F(QueueTest, ReopenWithSameGeometryKeepsDataAndPositions) {
    {
        auto q = create({2, kSmallRing});
        ASSERT_TRUE(q);
        RingProducer p(*q, 1, 100);
        ASSERT_TRUE(append(p, "a 1 2\n"));
        ASSERT_TRUE(append(p, "b 3 4\n"));
        p.publish();
        consume(*q, 1, 6, 1);
        q->ring(1).dropped_full.store(7);
    }
    const int64_t created = [&] {
        std::string error;
        auto q = QueueFile::open(path_, error);
        return q ? q->header().created_unix_ns : 0;
    }();
    std::string error;
    auto q = QueueFile::open_or_create(path_, "carbon:2003", {2, kSmallRing}, error);
    ASSERT_TRUE(q) << error;
    EXPECT_EQ(q->header().created_unix_ns, created);  // not recreated
    EXPECT_EQ(q->ring(1).write_pos.load(), 12u);
    EXPECT_EQ(q->ring(1).lines_written.load(), 2u);
    EXPECT_EQ(q->ring(1).read_pos.load(), 6u);
    EXPECT_EQ(q->ring(1).lines_read.load(), 1u);
    EXPECT_EQ(q->ring(1).dropped_full.load(), 7u);
    EXPECT_EQ(q->queued_lines(), 1u);
    EXPECT_EQ(q->queued_bytes(), 6u);
    EXPECT_EQ(q->dropped_lines(), 7u);
    EXPECT_EQ(read_ring(*q, 1, 6, 6), "b 3 4\n");

    // A producer started afterwards (a restarted worker) continues where the last one published.
    RingProducer p(*q, 1, 100);
    ASSERT_TRUE(append(p, "c 5 6\n"));
    p.publish();
    EXPECT_EQ(q->ring(1).write_pos.load(), 18u);
    EXPECT_EQ(q->ring(1).lines_written.load(), 3u);
    EXPECT_EQ(read_ring(*q, 1, 12, 6), "c 5 6\n");
}

TEST_F(QueueTest, OpenSeesWhatAnotherMappingWrote) {
    auto supervisor = create({1, kSmallRing});
    ASSERT_TRUE(supervisor);
    std::string error;
    auto worker = QueueFile::open(path_, error);
    ASSERT_TRUE(worker) << error;
    RingProducer p(*worker, 0, 10);
    ASSERT_TRUE(append(p, "x 1 2\n"));
    p.publish();
    EXPECT_EQ(supervisor->ring(0).write_pos.load(), 6u);
    EXPECT_EQ(supervisor->queued_lines(), 1u);
    EXPECT_EQ(read_ring(*supervisor, 0, 0, 6), "x 1 2\n");
}

// --- producing -----------------------------------------------------------------------------------

TEST_F(QueueTest, AppendIsInvisibleUntilPublish) {
    auto q = create({2, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 100);
    EXPECT_EQ(&p.queue(), q.get());
    ASSERT_TRUE(append(p, "a.b 1 2\n"));
    std::string_view parts[] = {"c.d", " ", "3", " ", "4", "\n"};
    ASSERT_TRUE(p.append(parts, 6, 8));
    EXPECT_EQ(q->ring(0).write_pos.load(), 0u);
    EXPECT_EQ(q->ring(0).lines_written.load(), 0u);
    EXPECT_EQ(q->queued_lines(), 0u);
    EXPECT_EQ(q->queued_bytes(), 0u);

    p.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), 16u);
    EXPECT_EQ(q->ring(0).lines_written.load(), 2u);
    EXPECT_EQ(q->ring(1).write_pos.load(), 0u);  // other rings untouched
    EXPECT_EQ(q->queued_lines(), 2u);
    EXPECT_EQ(q->queued_bytes(), 16u);
    EXPECT_EQ(std::string(q->ring_data(0), 16), "a.b 1 2\nc.d 3 4\n");

    // Publishing again with nothing new changes nothing.
    p.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), 16u);
    EXPECT_EQ(q->ring(0).lines_written.load(), 2u);
}

TEST_F(QueueTest, UnpublishedLinesOfADeadProducerAreNotVisible) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    {
        RingProducer p(*q, 0, 100);
        ASSERT_TRUE(append(p, "a 1 2\n"));
        p.publish();
        ASSERT_TRUE(append(p, "lost 1 2\n"));
    }
    EXPECT_EQ(q->ring(0).write_pos.load(), 6u);
    EXPECT_EQ(q->ring(0).lines_written.load(), 1u);
    RingProducer next(*q, 0, 100);
    ASSERT_TRUE(append(next, "b 3 4\n"));
    next.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), 12u);
    EXPECT_EQ(read_ring(*q, 0, 0, 12), "a 1 2\nb 3 4\n");
}

TEST_F(QueueTest, LineStraddlingTheRingEndIsWrittenInTwoParts) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 1000);
    // Fill up to 10 bytes before the end of the ring, then let the consumer take it.
    const std::string filler = std::string(kSmallRing - 10 - 1, 'f') + "\n";
    ASSERT_TRUE(append(p, filler));
    p.publish();
    consume(*q, 0, filler.size(), 1);

    // 22 bytes from stream position 4086: 10 at the end of the ring, 12 at its start.
    std::string_view parts[] = {"wrap.metric", " ", "42", " ", "1700000000", "\n"};
    const std::string line = "wrap.metric 42 1700000000\n";
    ASSERT_TRUE(p.append(parts, 6, line.size()));
    p.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), kSmallRing - 10 + line.size());
    EXPECT_EQ(q->ring(0).lines_written.load(), 2u);
    EXPECT_EQ(q->queued_lines(), 1u);
    EXPECT_EQ(q->queued_bytes(), line.size());

    const char* data = q->ring_data(0);
    EXPECT_EQ(std::string(data + kSmallRing - 10, 10), line.substr(0, 10));
    EXPECT_EQ(std::string(data, line.size() - 10), line.substr(10));
    EXPECT_EQ(read_ring(*q, 0, kSmallRing - 10, line.size()), line);
}

TEST_F(QueueTest, SinglePartLineStraddlingTheRingEnd) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 1000);
    const std::string filler = std::string(kSmallRing - 3 - 1, 'f') + "\n";
    ASSERT_TRUE(append(p, filler));
    p.publish();
    consume(*q, 0, filler.size(), 1);
    const std::string line = "abcdefgh 1 2\n";
    ASSERT_TRUE(append(p, line));
    p.publish();
    EXPECT_EQ(std::string(q->ring_data(0) + kSmallRing - 3, 3), "abc");
    EXPECT_EQ(std::string(q->ring_data(0), line.size() - 3), "defgh 1 2\n");
    EXPECT_EQ(read_ring(*q, 0, kSmallRing - 3, line.size()), line);
}

TEST_F(QueueTest, FullRingRefusesAndCountsDropsAfterPublish) {
    auto q = create({2, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 1000000);
    const std::string line = std::string(63, 'x') + "\n";  // 64 bytes: 64 of them fill the ring exactly
    for (int i = 0; i < 64; ++i) ASSERT_TRUE(append(p, line)) << i;
    EXPECT_FALSE(append(p, line));
    EXPECT_FALSE(append(p, "y 1 2\n"));
    std::string_view empty_parts[] = {"z", "\n"};
    EXPECT_FALSE(p.append(empty_parts, 2, 2));
    EXPECT_EQ(q->ring(0).dropped_full.load(), 0u);  // counted only on publish
    EXPECT_EQ(q->dropped_lines(), 0u);

    p.publish();
    EXPECT_EQ(q->ring(0).dropped_full.load(), 3u);
    EXPECT_EQ(q->dropped_lines(), 3u);
    EXPECT_EQ(q->ring(0).write_pos.load(), kSmallRing);
    EXPECT_EQ(q->ring(0).lines_written.load(), 64u);
    EXPECT_EQ(q->queued_bytes(), kSmallRing);
    EXPECT_EQ(q->queued_lines(), 64u);

    // Drops alone are published too.
    EXPECT_FALSE(append(p, line));
    p.publish();
    EXPECT_EQ(q->ring(0).dropped_full.load(), 4u);
    EXPECT_EQ(q->ring(0).lines_written.load(), 64u);

    // Once the consumer frees one line's worth, exactly one more line fits.
    consume(*q, 0, 64, 1);
    EXPECT_TRUE(append(p, line));
    EXPECT_FALSE(append(p, "q\n"));
    p.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), kSmallRing + 64);
    EXPECT_EQ(q->ring(0).dropped_full.load(), 5u);
    EXPECT_EQ(q->queued_bytes(), kSmallRing);
    EXPECT_EQ(q->queued_lines(), 64u);
    // The new line wrapped onto the start of the ring.
    EXPECT_EQ(std::string(q->ring_data(0), 64), line);
}

// RingProducer::append_lines (the listener's runs of lines queued as received) writes and counts what
// appending the same lines one by one writes and counts, or nothing at all (and append_line, which appends
// what does not fit as a run, what append() does): runs of random lines into
// one queue, the same lines one by one into a twin, with a consumer taking random amounts from both
// (so runs wrap, meet a full ring and meet the line cap), and the two rings must stay byte for byte
// and count for count the same.
TEST_F(QueueTest, AppendLinesIsAppendingOneByOne) {
    for (uint64_t cap : {uint64_t(7), uint64_t(40), uint64_t(1000000)}) {
        std::string error;
        std::error_code ignored;
        std::filesystem::remove(dir_ + "/runs.queue", ignored);
        std::filesystem::remove(dir_ + "/single.queue", ignored);
        auto runs = QueueFile::open_or_create(dir_ + "/runs.queue", "a:1", {1, kSmallRing}, error);
        auto single = QueueFile::open_or_create(dir_ + "/single.queue", "a:1", {1, kSmallRing}, error);
        ASSERT_TRUE(runs && single) << error;
        RingProducer run_producer(*runs, 0, cap), single_producer(*single, 0, cap);
        QueueReader run_reader(*runs), single_reader(*single);
        uint64_t state = 12345 + cap, whole_runs = 0, split_runs = 0;
        auto next = [&] { return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
        for (int round = 0; round < 3000; ++round) {
            std::string text;
            const uint64_t lines = 1 + next() % 12;
            for (uint64_t i = 0; i < lines; ++i)
                text += std::string(1 + next() % 300, static_cast<char>('a' + (round + i) % 26)) + "\n";
            if (run_producer.append_lines(text.data(), text.size(), lines)) {
                ++whole_runs;
            } else {
                ++split_runs;
                for (size_t at = 0; at < text.size();) {
                    const size_t nl = text.find('\n', at);
                    run_producer.append_line(std::string_view(text).substr(at, nl - at + 1));  // == append()
                    at = nl + 1;
                }
            }
            for (size_t at = 0; at < text.size();) {
                const size_t nl = text.find('\n', at);
                append(single_producer, text.substr(at, nl - at + 1));
                at = nl + 1;
            }
            run_producer.publish();
            single_producer.publish();
            const RingControl &a = runs->ring(0), &b = single->ring(0);
            ASSERT_EQ(a.write_pos.load(), b.write_pos.load()) << round;
            ASSERT_EQ(a.lines_written.load(), b.lines_written.load()) << round;
            ASSERT_EQ(a.dropped_full.load(), b.dropped_full.load()) << round;
            ASSERT_EQ(std::string(runs->ring_data(0), kSmallRing), std::string(single->ring_data(0), kSmallRing));
            if (next() % 3 == 0) {
                const uint64_t take = next() % kSmallRing;
                ReadBatch x, y;
                const bool got_x = run_reader.read(0, take, x), got_y = single_reader.read(0, take, y);
                ASSERT_EQ(got_x, got_y);
                if (got_x) {
                    ASSERT_EQ(x.end, y.end);
                    ASSERT_EQ(x.lines, y.lines);
                    run_reader.commit(x);
                    single_reader.commit(y);
                }
            }
        }
        EXPECT_GT(whole_runs, 100u) << cap;  // both outcomes were met
        EXPECT_GT(split_runs, 100u) << cap;
    }
}

TEST_F(QueueTest, PartialRoomIsNotEnough) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 1000000);
    ASSERT_TRUE(append(p, std::string(kSmallRing - 5, 'a') + "\n"));  // 4 bytes left
    EXPECT_FALSE(append(p, "abcd\n"));                                // needs 5
    EXPECT_TRUE(append(p, "abc\n"));                                  // needs 4
    p.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), kSmallRing);
    EXPECT_EQ(q->ring(0).dropped_full.load(), 1u);
}

TEST_F(QueueTest, LineLongerThanTheRingIsDropped) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 100);
    EXPECT_FALSE(append(p, std::string(kSmallRing, 'a') + "\n"));
    p.publish();
    EXPECT_EQ(q->ring(0).write_pos.load(), 0u);
    EXPECT_EQ(q->ring(0).dropped_full.load(), 1u);
}

TEST_F(QueueTest, LineCapIsHonouredExactly) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 3);
    EXPECT_TRUE(append(p, "a 1 2\n"));
    EXPECT_TRUE(append(p, "b 1 2\n"));
    EXPECT_TRUE(append(p, "c 1 2\n"));  // three queued (two unpublished count too)
    EXPECT_FALSE(append(p, "d 1 2\n"));
    p.publish();
    EXPECT_EQ(q->ring(0).lines_written.load(), 3u);
    EXPECT_EQ(q->ring(0).write_pos.load(), 18u);
    EXPECT_EQ(q->ring(0).dropped_full.load(), 1u);
    EXPECT_FALSE(append(p, "e 1 2\n"));

    consume(*q, 0, 6, 1);  // the consumer delivered one line
    EXPECT_TRUE(append(p, "f 1 2\n"));
    EXPECT_FALSE(append(p, "g 1 2\n"));
    p.publish();
    EXPECT_EQ(q->ring(0).lines_written.load(), 4u);
    EXPECT_EQ(q->ring(0).dropped_full.load(), 3u);
    EXPECT_EQ(q->queued_lines(), 3u);
    EXPECT_EQ(q->queued_bytes(), 18u);
    EXPECT_EQ(read_ring(*q, 0, 6, 18), "b 1 2\nc 1 2\nf 1 2\n");
}

TEST_F(QueueTest, LineCapOfOne) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p(*q, 0, 1);
    EXPECT_TRUE(append(p, "a 1 2\n"));
    EXPECT_FALSE(append(p, "b 1 2\n"));
    p.publish();
    consume(*q, 0, 6, 1);
    EXPECT_TRUE(append(p, "c 1 2\n"));
    p.publish();
    EXPECT_EQ(q->ring(0).lines_written.load(), 2u);
    EXPECT_EQ(q->ring(0).dropped_full.load(), 1u);
}

TEST_F(QueueTest, QueuedTotalsFollowConsumerProgressAcrossRings) {
    auto q = create({3, kSmallRing});
    ASSERT_TRUE(q);
    RingProducer p0(*q, 0, 100), p2(*q, 2, 100);
    for (int i = 0; i < 5; ++i) ASSERT_TRUE(append(p0, "r0 1 2\n"));       // 7 bytes each
    for (int i = 0; i < 2; ++i) ASSERT_TRUE(append(p2, "ring2 10 20\n"));  // 12 bytes each
    p0.publish();
    p2.publish();
    EXPECT_EQ(q->queued_lines(), 7u);
    EXPECT_EQ(q->queued_bytes(), 5u * 7 + 2u * 12);

    consume(*q, 0, 3 * 7, 3);
    EXPECT_EQ(q->queued_lines(), 4u);
    EXPECT_EQ(q->queued_bytes(), 2u * 7 + 2u * 12);

    consume(*q, 2, 2 * 12, 2);
    consume(*q, 0, 2 * 7, 2);
    EXPECT_EQ(q->queued_lines(), 0u);
    EXPECT_EQ(q->queued_bytes(), 0u);
    EXPECT_EQ(q->ring(0).read_pos.load(), 35u);
    EXPECT_EQ(q->ring(0).lines_read.load(), 5u);
}

TEST_F(QueueTest, ConsumerWaitReturnsAtOnceWhenNotEmpty) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    auto start = std::chrono::steady_clock::now();
    q->wait_for_data(5000, [] { return false; });
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
    EXPECT_EQ(q->header().consumer_waiting.load(), 0u);
}

TEST_F(QueueTest, ConsumerWaitTimesOut) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    auto start = std::chrono::steady_clock::now();
    q->wait_for_data(50, [] { return true; });
    auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_GE(elapsed, std::chrono::milliseconds(40));
    EXPECT_LT(elapsed, std::chrono::seconds(3));
    EXPECT_EQ(q->header().consumer_waiting.load(), 0u);
}

TEST_F(QueueTest, PublishWakesASleepingConsumer) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    std::string error;
    auto producer_view = QueueFile::open(path_, error);
    ASSERT_TRUE(producer_view) << error;
    std::atomic<bool> woke {false};
    std::thread consumer([&] {
        while (q->ring(0).write_pos.load(std::memory_order_acquire) == 0)
            q->wait_for_data(10000, [&] { return q->ring(0).write_pos.load(std::memory_order_acquire) == 0; });
        woke = true;
    });
    // Wait until the consumer is asleep on the futex (it sleeps up to 10 s), then publish: only the
    // wake can make it return well before its timeout.
    for (int i = 0; i < 1000 && producer_view->header().consumer_waiting.load() == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    bool asleep = producer_view->header().consumer_waiting.load() != 0;
    uint32_t seq_before = producer_view->header().wake_seq.load();
    auto published = std::chrono::steady_clock::now();
    RingProducer p(*producer_view, 0, 10);
    ASSERT_TRUE(append(p, "a 1 2\n"));
    p.publish();
    consumer.join();
    ASSERT_TRUE(asleep) << "the consumer never went to sleep";
    EXPECT_TRUE(woke);
    EXPECT_LT(std::chrono::steady_clock::now() - published, std::chrono::seconds(5))
        << "woken by the timeout, not by publish";
    EXPECT_EQ(producer_view->header().wake_seq.load(), seq_before + 1);
}

TEST_F(QueueTest, WakeWithoutWaitingConsumerDoesNotBumpSequence) {
    auto q = create({1, kSmallRing});
    ASSERT_TRUE(q);
    uint32_t before = q->header().wake_seq.load();
    q->wake_consumer();
    EXPECT_EQ(q->header().wake_seq.load(), before);
}

// --- errors --------------------------------------------------------------------------------------

TEST_F(QueueTest, OpenMissingFileNamesPath) {
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("No such file"), std::string::npos) << error;
}

TEST_F(QueueTest, CreateInMissingDirectoryNamesPath) {
    const std::string path = dir_ + "/missing/dest.queue";
    std::string error;
    EXPECT_FALSE(QueueFile::open_or_create(path, "d:1", {1, kSmallRing}, error));
    EXPECT_NE(error.find(path), std::string::npos) << error;
    EXPECT_NE(error.find("cannot create"), std::string::npos) << error;
}

TEST_F(QueueTest, BadMagicIsRefusedAndKept) {
    const std::string junk(16384, 'j');
    write_file(path_, junk);
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("bad magic"), std::string::npos) << error;

    error.clear();
    EXPECT_FALSE(QueueFile::open_or_create(path_, "d:1", {1, kSmallRing}, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("bad magic"), std::string::npos) << error;
    EXPECT_EQ(read_file(path_), junk);
}

TEST_F(QueueTest, OtherLayoutVersionIsRefusedAndKept) {
    {
        auto q = create({1, kSmallRing});
        ASSERT_TRUE(q);
        q->header().layout_version = kQueueLayoutVersion + 1;
    }
    const std::string before = read_file(path_);
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("layout version " + std::to_string(kQueueLayoutVersion + 1)), std::string::npos) << error;

    error.clear();
    EXPECT_FALSE(QueueFile::open_or_create(path_, "carbon:2003", {1, kSmallRing}, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_EQ(read_file(path_), before);
}

TEST_F(QueueTest, OtherRingControlSizeIsRefused) {
    {
        auto q = create({1, kSmallRing});
        ASSERT_TRUE(q);
        q->header().ring_control_size = 64;
    }
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("layout version"), std::string::npos) << error;
}

TEST_F(QueueTest, TruncatedFileIsRefusedAndKept) {
    {
        auto q = create({2, kSmallRing});
        ASSERT_TRUE(q);
    }
    ASSERT_EQ(truncate(path_.c_str(), 4096 + 4096 + kSmallRing), 0);  // lost the second ring
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("truncated (12288 of 16384 bytes)"), std::string::npos) << error;

    error.clear();
    EXPECT_FALSE(QueueFile::open_or_create(path_, "carbon:2003", {2, kSmallRing}, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_EQ(file_size(path_), 12288);
}

TEST_F(QueueTest, FileShorterThanHeaderIsTruncated) {
    write_file(path_, "PMQUEUE1");
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("truncated (8 bytes)"), std::string::npos) << error;

    write_file(path_, "");
    error.clear();
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("truncated (0 bytes)"), std::string::npos) << error;
}

TEST_F(QueueTest, CorruptGeometryInHeaderIsRefused) {
    {
        auto q = create({1, kSmallRing});
        ASSERT_TRUE(q);
        q->header().ring_capacity = 3000;  // not a power of two
    }
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("corrupt header (rings 1, capacity 3000)"), std::string::npos) << error;
}

TEST_F(QueueTest, ZeroRingsInHeaderIsRefused) {
    {
        auto q = create({1, kSmallRing});
        ASSERT_TRUE(q);
        q->header().ring_count = 0;
    }
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("corrupt header"), std::string::npos) << error;
}

TEST_F(QueueTest, ReadPositionBeyondWritePositionIsRefused) {
    {
        auto q = create({2, kSmallRing});
        ASSERT_TRUE(q);
        q->ring(1).write_pos = 10;
        q->ring(1).read_pos = 20;
    }
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("ring 1 has read position 20 beyond write position 10"), std::string::npos) << error;

    error.clear();
    EXPECT_FALSE(QueueFile::open_or_create(path_, "carbon:2003", {2, kSmallRing}, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_EQ(file_size(path_), 16384);
}

TEST_F(QueueTest, MoreQueuedThanCapacityIsRefused) {
    {
        auto q = create({1, kSmallRing});
        ASSERT_TRUE(q);
        q->ring(0).write_pos = kSmallRing + 1;
        q->ring(0).read_pos = 0;
    }
    std::string error;
    EXPECT_FALSE(QueueFile::open(path_, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("corrupt"), std::string::npos) << error;
}

TEST_F(QueueTest, NonEmptyFileInAnotherGeometryIsCarriedOverWholeAndInOrder) {
    std::string expected0, expected1;
    {
        auto q = create({2, 2 * kSmallRing});  // larger rings than the new ones: ring 0 spills into two
        ASSERT_TRUE(q);
        RingProducer p0(*q, 0, 1000), p1(*q, 1, 1000);
        // Ring 0 wraps: fill, deliver most, fill again.
        for (int i = 0; i < 150; ++i) ASSERT_TRUE(append(p0, "w." + std::to_string(100 + i) + " 1 2\n"));
        p0.publish();
        consume(*q, 0, 140 * 10, 140);  // lines of 10 bytes
        for (int i = 0; i < 10; ++i) expected0 += "w." + std::to_string(240 + i) + " 1 2\n";
        for (int i = 0; i < 500; ++i) {
            std::string line = "x." + std::to_string(100 + i) + " 1 2\n";
            ASSERT_TRUE(append(p0, line));
            expected0 += line;
        }
        p0.publish();
        for (int i = 0; i < 3; ++i) {
            std::string line = "r." + std::to_string(i) + " 1 2\n";
            ASSERT_TRUE(append(p1, line));
            expected1 += line;
        }
        p1.publish();
        ASSERT_EQ(q->queued_lines(), 513u);
    }
    std::string error;
    QueueSpaceReport space;
    auto q = QueueFile::open_or_create(path_, "carbon:2003", {3, kSmallRing}, UINT64_MAX, space, error);
    ASSERT_TRUE(q) << error;
    EXPECT_EQ(q->ring_count(), 3u);
    EXPECT_EQ(q->ring_capacity(), kSmallRing);
    EXPECT_GT(q->ring(1).write_pos.load(), 0u);
    EXPECT_EQ(q->queued_lines(), 513u);
    EXPECT_EQ(space.migrated_lines, 513u);
    EXPECT_EQ(space.migrated_from, "2 rings of 8192 bytes");
    std::string all;
    for (uint32_t i = 0; i < 3; ++i)
        all += read_ring(*q, i, q->ring(i).read_pos.load(), q->ring(i).write_pos.load() - q->ring(i).read_pos.load());
    EXPECT_EQ(all, expected0 + expected1);
    EXPECT_FALSE(std::filesystem::exists(path_ + ".migrating"));
}

TEST_F(QueueTest, NonEmptyFileThatDoesNotFitAnotherGeometryIsRefusedAndKept) {
    {
        auto q = create({2, 4 * kSmallRing});
        ASSERT_TRUE(q);
        RingProducer p(*q, 0, 10000);
        for (int i = 0; i < 1000; ++i) ASSERT_TRUE(append(p, "a." + std::to_string(1000 + i) + " 1 2\n"));
        p.publish();
    }
    const std::string before = read_file(path_);
    std::string error;
    EXPECT_FALSE(QueueFile::open_or_create(path_, "carbon:2003", {1, kSmallRing}, error));
    EXPECT_NE(error.find(path_), std::string::npos) << error;
    EXPECT_NE(error.find("holds 1000 queued lines in another geometry (2 rings of 16384 bytes) and they cannot be "
                         "carried over: the new geometry (1 rings of 4096 bytes) holds less"),
              std::string::npos)
        << error;
    EXPECT_EQ(read_file(path_), before);
    EXPECT_FALSE(std::filesystem::exists(path_ + ".migrating"));
}

TEST_F(QueueTest, EmptyFileInAnotherGeometryIsRecreated) {
    {
        auto q = create({2, kSmallRing});
        ASSERT_TRUE(q);
        RingProducer p(*q, 0, 100);
        ASSERT_TRUE(append(p, "a 1 2\n"));
        p.publish();
        consume(*q, 0, 6, 1);  // delivered: nothing left queued
        EXPECT_EQ(q->queued_bytes(), 0u);
    }
    std::string error;
    auto q = QueueFile::open_or_create(path_, "carbon:2003", {3, 2 * kSmallRing}, error);
    ASSERT_TRUE(q) << error;
    EXPECT_EQ(error, "");
    EXPECT_EQ(q->ring_count(), 3u);
    EXPECT_EQ(q->ring_capacity(), 2 * kSmallRing);
    EXPECT_EQ(q->header().file_size, 4096u + 4096u + 3 * 2 * kSmallRing);
    EXPECT_EQ(file_size(path_), static_cast<off_t>(q->header().file_size));
    for (uint32_t i = 0; i < 3; ++i) {
        EXPECT_EQ(q->ring(i).write_pos.load(), 0u);
        EXPECT_EQ(q->ring(i).read_pos.load(), 0u);
        EXPECT_EQ(q->ring(i).lines_written.load(), 0u);
    }
}

// --- control segment -----------------------------------------------------------------------------

TEST(ControlSegmentTest, InitAndValidate) {
    auto memory = std::make_unique<unsigned char[]>(sizeof(ControlSegment) + 64);
    void* aligned = memory.get() + (64 - reinterpret_cast<uintptr_t>(memory.get()) % 64) % 64;
    std::memset(aligned, 0, sizeof(ControlSegment));
    EXPECT_FALSE(control_is_valid(nullptr));
    EXPECT_FALSE(control_is_valid(static_cast<ControlSegment*>(aligned)));
    ControlSegment* control = init_control(aligned, 7);
    ASSERT_EQ(static_cast<void*>(control), aligned);
    EXPECT_TRUE(control_is_valid(control));
    EXPECT_EQ(control->header.magic, kControlMagic);
    EXPECT_EQ(control->header.worker_count, 7u);
    EXPECT_EQ(control->header.layout_size, sizeof(ControlSegment));
    EXPECT_EQ(control->header.creator_pid, static_cast<uint32_t>(getpid()));
    EXPECT_EQ(control->header.generation.load(), 0u);
    EXPECT_EQ(control->destinations[0].state.load(), static_cast<uint32_t>(SlotState::free));
    control->header.layout_version = kControlLayoutVersion + 1;
    EXPECT_FALSE(control_is_valid(control));
    control->header.layout_version = kControlLayoutVersion;
    control->header.layout_size = 1;
    EXPECT_FALSE(control_is_valid(control));
}

TEST(ControlSegmentTest, LinkStateNames) {
    EXPECT_STREQ(link_state_name(LinkState::starting), "starting");
    EXPECT_STREQ(link_state_name(LinkState::connecting), "connecting");
    EXPECT_STREQ(link_state_name(LinkState::connected), "connected");
    EXPECT_STREQ(link_state_name(LinkState::down), "down");
    EXPECT_STREQ(link_state_name(LinkState::stopped), "stopped");
    EXPECT_STREQ(link_state_name(static_cast<LinkState>(99)), "unknown");
}

TEST_F(QueueTest, PublishedPairIsConsistentAndCommitsAreCounted) {
    auto q = create({1, kSmallRing});
    RingProducer producer(*q, 0, 1000);
    std::string_view line = "a.b 1 2\n";
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(producer.append(&line, 1, line.size()));
    producer.publish();
    uint64_t write_pos = 0, lines = 0;
    ASSERT_TRUE(read_published(q->ring(0), write_pos, lines));
    EXPECT_EQ(write_pos, 3 * line.size());
    EXPECT_EQ(lines, 3u);
    commit_read(q->ring(0), line.size() * 2, 2);
    EXPECT_EQ(q->ring(0).read_pos.load(), line.size() * 2);
    EXPECT_EQ(q->ring(0).lines_read.load(), 2u);
    EXPECT_EQ(q->ring(0).commit_seq.load() % 2, 0u);
    EXPECT_EQ(q->queued_lines(), 1u);
}

TEST_F(QueueTest, ProducerThatDiedMidPublishIsRepairedByItsSuccessor) {
    auto q = create({1, kSmallRing});
    {
        RingProducer producer(*q, 0, 1000);
        std::string_view line = "x 1 2\n";
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(producer.append(&line, 1, line.size()));
        producer.publish();
    }
    commit_read(q->ring(0), 6, 1);  // the consumer delivered one line
    // Simulate a death between the two stores of a publish: the count moved on, the position did not.
    RingControl& ring = q->ring(0);
    ring.publish_seq.store(ring.publish_seq.load() + 1);
    ring.lines_written.store(ring.lines_written.load() + 7);
    uint64_t write_pos = 0, lines = 0;
    EXPECT_FALSE(read_published(ring, write_pos, lines)) << "an odd sequence must not be read as consistent";
    RingProducer successor(*q, 0, 1000);
    EXPECT_TRUE(read_published(ring, write_pos, lines));
    EXPECT_EQ(write_pos, 30u);
    EXPECT_EQ(lines, 5u) << "the count was rebuilt from the committed position and the ring's contents";
    EXPECT_EQ(q->queued_lines(), 4u);
}

// --sync-interval: a file last synced during another boot (the machine went down) is rolled back to
// what its last sync made durable; in the same boot (a process crash) nothing is given up.
TEST_F(QueueTest, FileSyncedInAnotherBootRollsBackToTheSyncedPoint) {
    {
        auto q = create({2, kSmallRing});
        ASSERT_TRUE(q);
        RingProducer p(*q, 0, 1000);
        ASSERT_TRUE(append(p, "a 1 2\n"));
        ASSERT_TRUE(append(p, "b 1 2\n"));
        p.publish();
        UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
        ASSERT_TRUE(q->sync_published(fd.get()));
        EXPECT_EQ(q->ring(0).synced_write_pos.load(), 12u);
        EXPECT_EQ(q->ring(0).synced_lines.load(), 2u);
        ASSERT_TRUE(append(p, "c 1 2\n"));  // after the sync: may not have reached the disk
        p.publish();
    }
    {
        std::string error;
        QueueSpaceReport space;
        auto q = QueueFile::open_or_create(path_, "carbon:2003", {2, kSmallRing}, UINT64_MAX, space, error);
        ASSERT_TRUE(q) << error;
        EXPECT_EQ(space.rolled_back_bytes, 0u) << "same boot: a process crash keeps everything";
        EXPECT_EQ(q->queued_lines(), 3u);
        std::memset(q->header().synced_boot_id, '0', sizeof q->header().synced_boot_id);  // another boot
    }
    std::string error;
    QueueSpaceReport space;
    auto q = QueueFile::open_or_create(path_, "carbon:2003", {2, kSmallRing}, UINT64_MAX, space, error);
    ASSERT_TRUE(q) << error;
    EXPECT_EQ(space.rolled_back_bytes, 6u);
    EXPECT_EQ(q->queued_lines(), 2u);
    EXPECT_EQ(q->ring(0).write_pos.load(), 12u);
    EXPECT_EQ(read_ring(*q, 0, 0, 12), "a 1 2\nb 1 2\n");
    // Rolled back once: the next start (in this boot) keeps what is there.
    q.reset();
    q = QueueFile::open_or_create(path_, "carbon:2003", {2, kSmallRing}, UINT64_MAX, space, error);
    EXPECT_EQ(space.rolled_back_bytes, 0u);
}

// A queue file not allocated on disk (an older polymur's sparse file on a full disk) takes no new
// lines, counted as dropped, until its space is reserved; then it takes them again.
TEST_F(QueueTest, UnreservedQueueDropsAndCountsUntilItsSpaceIsReserved) {
    auto q = create({2, kSmallRing});
    ASSERT_TRUE(q);
    EXPECT_TRUE(q->space_reserved()) << "a new file is allocated in full";
    struct stat st = {};
    ASSERT_EQ(stat(path_.c_str(), &st), 0);
    EXPECT_GE(static_cast<uint64_t>(st.st_blocks) * 512, q->header().file_size);
    q->header().space_reserved.store(0);
    RingProducer p(*q, 0, 1000);
    EXPECT_FALSE(append(p, "a 1 2\n"));
    p.publish();
    EXPECT_EQ(q->dropped_lines(), 1u);
    EXPECT_EQ(q->queued_lines(), 0u);
    std::string error;
    ASSERT_TRUE(q->reserve_space(error)) << error;
    p.refresh();
    EXPECT_TRUE(append(p, "b 1 2\n"));
    p.publish();
    EXPECT_EQ(q->queued_lines(), 1u);
}

}  // namespace
}  // namespace polymur::shm
