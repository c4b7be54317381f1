// A destination queue: one file under --state-dir, mapped shared by every listener worker (each
// producing into its own ring) and by the destination's output process (the one consumer).
// Records are whole LF-terminated lines. Positions are monotonically increasing byte counts; a
// producer publishes its write position only after whole lines are in place, and the consumer
// publishes its read position only past lines the destination accepted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
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
    uint64_t ring_capacity;  // bytes, a multiple of kPage (older files: a power of two)
    uint64_t file_size;
    int64_t created_unix_ns;
    char destination[kDestinationTextMax];
    // Futex word the consumer sleeps on when every ring is empty.
    alignas(64) std::atomic<uint32_t> wake_seq;
    std::atomic<uint32_t> consumer_waiting;
    // 1 once every byte of the file is allocated on disk (fallocate), so a write into the ring can
    // never fault for want of space. While 0 (a sparse file from an older polymur on a full disk),
    // producers drop and count instead of writing. Lives in what was padding: old files read 0.
    std::atomic<uint32_t> space_reserved;
    // --sync-interval: the boot (/proc/sys/kernel/random/boot_id, hex without dashes) during which the
    // ring controls' synced positions were last made durable. A start in another boot after no clean
    // stop rolls each ring back to them (what was written after the last sync may be torn).
    char synced_boot_id[32];
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
    // --sync-interval: a (write position, lines written) pair of the producer that was on disk,
    // data included, when the output last synced the file. Written by the output's sync thread.
    Counter synced_write_pos;
    Counter synced_lines;
};

static_assert(std::is_standard_layout_v<QueueHeader>);
static_assert(std::is_standard_layout_v<RingControl>);
static_assert(sizeof(QueueHeader) <= kPage);
static_assert(offsetof(QueueHeader, synced_boot_id) + 32 <= sizeof(QueueHeader) && sizeof(QueueHeader) == 384,
              "new fields must stay inside the layout-2 header");
static_assert(sizeof(RingControl) == 128);

struct QueueGeometry {
    uint32_t ring_count = 0;
    uint64_t ring_capacity = 0;
};

// Bytes free for an unprivileged writer on the file system holding `path` (a file or directory;
// the nearest existing parent is asked). 0 when it cannot be asked.
uint64_t filesystem_free_bytes(const std::string& path);

// Bytes a queue file of this geometry takes (header, ring controls and data).
uint64_t queue_file_size(QueueGeometry geometry);

// What open_or_create found about disk space, for the supervisor's log and stats.
struct QueueSpaceReport {
    uint64_t wanted_bytes = 0;       // file size of the geometry asked for
    uint64_t allocated_bytes = 0;    // file size actually created (0: an existing file kept as it was)
    uint64_t free_bytes = 0;         // free on the state directory's file system before creating
    std::string problem;             // why less than asked for was created, or why space is not reserved
    uint64_t migrated_lines = 0;     // lines carried over from a file of another geometry
    std::string migrated_from;       // that geometry, in words
    uint64_t rolled_back_bytes = 0;  // given up after a machine crash: written after the last sync
};

class QueueFile {
public:
    // Supervisor: opens the queue file for `destination`, creating it when missing. An existing file
    // is validated; one whose layout or geometry does not match is refused with `error` naming the
    // file and what to do, unless it holds nothing (then it is recreated).
    // Space for a new file is allocated on disk (fallocate) before the file is used; when the file
    // system cannot hold the geometry asked for (or more than `max_bytes`), the largest geometry
    // that fits is created instead and `space` says so. A queue that cannot even get its smallest
    // geometry is refused.
    static std::unique_ptr<QueueFile> open_or_create(const std::string& path, std::string_view destination,
                                                     QueueGeometry geometry, uint64_t max_bytes,
                                                     QueueSpaceReport& space, std::string& error);
    static std::unique_ptr<QueueFile> open_or_create(const std::string& path, std::string_view destination,
                                                     QueueGeometry geometry, std::string& error) {
        QueueSpaceReport ignored;
        return open_or_create(path, destination, geometry, UINT64_MAX, ignored, error);
    }
    // Creates a new file (which must not exist) as open_or_create does.
    static std::unique_ptr<QueueFile> create(const std::string& path, std::string_view destination,
                                             QueueGeometry geometry, uint64_t max_bytes, QueueSpaceReport& space,
                                             std::string& error);
    // Supervisor, at start: the lines queued in `old` (another geometry: other --workers or
    // --queue-bytes) are copied into a new file of `geometry`, which then replaces it by rename, so
    // a crash at any point leaves one complete copy: nothing lost, nothing duplicated. Refused when
    // they do not fit; then the old file is kept as it is.
    static std::unique_ptr<QueueFile> migrate(std::unique_ptr<QueueFile> old, std::string_view destination,
                                              QueueGeometry geometry, uint64_t max_bytes, QueueSpaceReport& space,
                                              std::string& error);
    // Children: maps an existing file and validates its header.
    static std::unique_ptr<QueueFile> open(const std::string& path, std::string& error);

    QueueHeader& header() { return *header_; }
    const QueueHeader& header() const { return *header_; }
    uint32_t ring_count() const { return header_->ring_count; }
    uint64_t ring_capacity() const { return header_->ring_capacity; }
    RingControl& ring(uint32_t index) { return rings_[index]; }
    const RingControl& ring(uint32_t index) const { return rings_[index]; }
    char* ring_data(uint32_t index) { return data_ + static_cast<size_t>(index) * header_->ring_capacity; }

    uint64_t capacity_bytes() const { return static_cast<uint64_t>(header_->ring_count) * header_->ring_capacity; }
    bool space_reserved() const { return header_->space_reserved.load(std::memory_order_acquire) != 0; }
    // Writes the whole mapping back to disk (msync) and waits for it.
    bool sync(std::string& error);
    // --sync-interval, output process: makes what the producers have published so far durable
    // (fdatasync of `fd`, a descriptor of this file), then records it as the rings' synced
    // positions and makes those durable too. False (errno set) when the disk refused.
    bool sync_published(int fd);
    // Supervisor, at start: when the file was synced during another boot, each ring is rolled back
    // to its synced positions (lines written after the last sync may not have reached the disk
    // before the machine went down). Returns the bytes given up.
    uint64_t roll_back_to_synced();
    // Supervisor, at start without --sync-interval: the synced positions are stale from now on.
    void forget_sync();
    // Allocates every byte of the file on disk; on success producers may write again.
    bool reserve_space(std::string& error);

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

    ~QueueFile();
    QueueFile(const QueueFile&) = delete;
    QueueFile& operator=(const QueueFile&) = delete;

private:
    QueueFile() = default;
    bool attach(std::string& error);
    void map_rings_in_huge_pages(char* base);
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

// Chooses ring count and capacity so the whole queue file takes at most `queue_bytes` bytes (each
// ring gets an equal share of what the header leaves, in whole pages, and at least 1 MiB).
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
    // Appends `lines` whole lines that lie one after the other at `data` (`bytes` in all, each
    // ending with '\n' and no longer than kMaxQueuedLine) in one copy: what appending them one by
    // one with append() would write, when all of them fit. When they do not all fit, nothing is
    // written or counted and false is returned (append them one by one then: some may fit).
    bool append_lines(const char* data, size_t bytes, uint64_t lines);
    // append() of a line in one part (ending with '\n'), its common case inline: it fits as the totals
    // were last read and does not wrap. Anything else is append()'s.
    bool append_line(std::string_view line) {
        const size_t size = line.size();
        if (space_reserved_ && size <= kMaxQueuedLine && size < capacity_ - write_offset_ &&
            write_pos_ + size - cached_read_pos_ <= capacity_ &&
            lines_written_ + unpublished_lines_ - cached_lines_read_ + cached_other_lines_ < line_cap_) {
            std::memcpy(data_ + write_offset_, line.data(), size);
            write_offset_ += size;
            write_pos_ += size;
            ++unpublished_lines_;
            return true;
        }
        return append(&line, 1, size);
    }
    // Whether a line of `total` bytes would fit now (nothing is counted).
    bool has_room(size_t total) { return has_room_for(total, 1); }
    // Whether `lines` lines of `bytes` bytes in all would fit now.
    bool has_room_for(uint64_t bytes, uint64_t lines);
    // Whether they would fit into an empty queue at all.
    bool could_ever_fit(uint64_t bytes, uint64_t lines) const { return bytes <= capacity_ && lines <= line_cap_; }
    // Bytes appended (published or not) that the consumer had not read at the last refresh(): how far
    // behind it is.
    uint64_t unread_bytes() const { return write_pos_ - cached_read_pos_; }
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
    uint64_t capacity_;
    uint64_t line_cap_;
    uint64_t write_pos_;
    uint64_t write_offset_;  // write_pos_ % capacity_, kept without a division per line
    uint64_t lines_written_;
    uint64_t unpublished_lines_ = 0;
    uint64_t unpublished_drops_ = 0;
    uint64_t cached_read_pos_;
    uint64_t cached_lines_read_;
    uint64_t cached_other_lines_ = 0;
    bool space_reserved_ = false;
};

}  // namespace polymur::shm
