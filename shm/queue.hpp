// A destination queue: one file under --state-dir, mapped shared by every listener worker (each
// producing into its own ring) and by the destination's output process (the one consumer).
// Records are whole LF-terminated lines. Positions are monotonically increasing byte counts; a
// producer publishes its write position only after whole lines are in place, and the consumer
// publishes its read position only past lines the destination accepted.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include <boost/interprocess/mapped_region.hpp>

#include "shm/control.hpp"

namespace polymur::shm {

inline constexpr uint64_t kQueueMagic = 0x3145554555514d50ULL;  // "PMQUEUE1"
inline constexpr uint32_t kQueueLayoutVersion = 2;
inline constexpr size_t kPage = 4096;

// The longest line any producer appends to a ring, with its '\n': the highest --max-line-length
// plus what producers add to an accepted line (a gateway's namespace prefix, a "-1" timestamp
// written out). RingProducer::append refuses longer lines, so a reader sizes its buffers by this
// constant, never by a configuration value that may differ from the one that wrote the queue.
inline constexpr size_t kMaxLineLengthLimit = size_t(1) << 20;  // the highest --max-line-length
inline constexpr size_t kMaxLineGrowth = 32 * 1024;             // prefix, '.', timestamp digits
inline constexpr size_t kMaxQueuedLine = kMaxLineLengthLimit + kMaxLineGrowth;

struct QueueHeader {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    uint32_t ring_control_size;
    uint32_t ring_count;
    uint64_t ring_capacity;  // bytes, a power of two
    uint64_t file_size;
    int64_t created_unix_ns;
    char destination[kDestinationTextMax];
    // Futex word the consumer sleeps on when every ring is empty.
    alignas(64) std::atomic<uint32_t> wake_seq;
    std::atomic<uint32_t> consumer_waiting;
};

struct RingControl {
    // Producer side. publish_seq is odd while write_pos and lines_written are being updated, so
    // the consumer can read the two as a consistent pair (a sequence lock).
    alignas(64) Counter write_pos;
    Counter lines_written;
    Counter dropped_full;
    Counter publish_seq;
    // Consumer side, updated only through commit_read() (commit_seq is its sequence lock).
    alignas(64) Counter read_pos;
    Counter lines_read;
    Counter commit_seq;
};

static_assert(std::is_standard_layout_v<QueueHeader>);
static_assert(std::is_standard_layout_v<RingControl>);
static_assert(sizeof(QueueHeader) <= kPage);
static_assert(sizeof(RingControl) == 128);

struct QueueGeometry {
    uint32_t ring_count = 0;
    uint64_t ring_capacity = 0;
};

class QueueFile {
public:
    // Supervisor: opens the queue file for `destination`, creating it when missing. An existing file
    // is validated; one whose layout or geometry does not match is refused with `error` naming the
    // file and what to do, unless it holds nothing (then it is recreated).
    static std::unique_ptr<QueueFile> open_or_create(const std::string& path, std::string_view destination,
                                                     QueueGeometry geometry, std::string& error);
    // Children: maps an existing file and validates its header.
    static std::unique_ptr<QueueFile> open(const std::string& path, std::string& error);

    QueueHeader& header() { return *header_; }
    const QueueHeader& header() const { return *header_; }
    uint32_t ring_count() const { return header_->ring_count; }
    uint64_t ring_capacity() const { return header_->ring_capacity; }
    RingControl& ring(uint32_t index) { return rings_[index]; }
    const RingControl& ring(uint32_t index) const { return rings_[index]; }
    char* ring_data(uint32_t index) { return data_ + static_cast<size_t>(index) * header_->ring_capacity; }

    uint64_t queued_lines() const;
    uint64_t queued_bytes() const;
    uint64_t dropped_lines() const;

    // Producer: wakes the consumer if it is asleep on the futex.
    void wake_consumer();
    // Consumer: sleeps until woken or `timeout_ms`, unless `still_empty` says data arrived meanwhile.
    //
    // Dekker's pattern: the consumer stores consumer_waiting then loads the write positions; the
    // producer stores its write position then loads consumer_waiting. Without a full fence on
    // each side either store may still sit in a store buffer when the other side loads (a release
    // store followed by a load is not ordered, not even on x86), so both could read the old value:
    // the consumer sleeps with data waiting and the producer skips the wake. The two seq_cst
    // fences (here, and in wake_consumer) make at least one side see the other's store.
    template <typename StillEmpty>
    void wait_for_data(int timeout_ms, StillEmpty still_empty) {
        uint32_t seq = header_->wake_seq.load(std::memory_order_seq_cst);
        header_->consumer_waiting.store(1, std::memory_order_seq_cst);
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (still_empty()) futex_wait(seq, timeout_ms);
        header_->consumer_waiting.store(0, std::memory_order_relaxed);
    }

    const std::string& path() const { return path_; }

private:
    QueueFile() = default;
    bool attach(std::string& error);
    void futex_wait(uint32_t seq, int timeout_ms);

    std::string path_;
    boost::interprocess::mapped_region region_;
    QueueHeader* header_ = nullptr;
    RingControl* rings_ = nullptr;
    char* data_ = nullptr;
};

// Consumer: `lines` more lines, up to `read_pos`, were delivered (or moved elsewhere).
void commit_read(RingControl& ring, uint64_t read_pos, uint64_t lines);

// Consumer, once it holds the queue's lock: repairs rings whose commit_seq a predecessor left odd
// (it died between the stores of commit_read). Waits at most a moment for a producer.
void repair_commit(QueueFile& queue);

// Consumer: a consistent (write position, lines written) pair of one ring. False when the
// producer is in the middle of publishing (or died there); then count the lines yourself.
bool read_published(const RingControl& ring, uint64_t& write_pos, uint64_t& lines_written);

// Chooses ring count and capacity for a destination queue of about `queue_bytes` bytes.
QueueGeometry geometry_for(uint32_t producer_count, uint64_t queue_bytes);

// Process-local producer handle on one ring (the shared part is RingControl).
// `line_cap` bounds the lines queued in the whole queue (all rings): exact while one producer is
// writing; with several writing at once it can be passed by what the others have not published yet.
class RingProducer {
public:
    RingProducer(QueueFile& queue, uint32_t ring_index, uint64_t line_cap);

    // Appends one line made of `parts` (the last part ends with '\n'). Returns false when the ring
    // has no room (bytes or the line cap) or the line is longer than kMaxQueuedLine; the drop is
    // counted.
    bool append(const std::string_view* parts, size_t count, size_t total);
    // Whether a line of `total` bytes would fit now (nothing is counted).
    bool has_room(size_t total) { return has_room_for(total, 1); }
    // Whether `lines` lines of `bytes` bytes in all would fit now.
    bool has_room_for(uint64_t bytes, uint64_t lines);
    // Whether they would fit into an empty queue at all.
    bool could_ever_fit(uint64_t bytes, uint64_t lines) const { return bytes <= capacity_ && lines <= line_cap_; }
    // Makes appended lines visible to the consumer. Call once per batch, not per line.
    void publish();
    // Re-reads what the consumer and the other producers did, so the cap is judged on fresh
    // totals. Call at the start of each batch.
    void refresh();

    QueueFile& queue() { return queue_; }

private:
    uint64_t lines_in_other_rings() const;

    QueueFile& queue_;
    uint32_t ring_index_;
    RingControl& control_;
    char* data_;
    uint64_t mask_;
    uint64_t capacity_;
    uint64_t line_cap_;
    uint64_t write_pos_;
    uint64_t lines_written_;
    uint64_t unpublished_lines_ = 0;
    uint64_t unpublished_drops_ = 0;
    uint64_t cached_read_pos_;
    uint64_t cached_lines_read_;
    uint64_t cached_other_lines_ = 0;
};

}  // namespace polymur::shm
