#include "shm/queue.hpp"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include <boost/interprocess/file_mapping.hpp>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"
#include "shm/mapping_guard.hpp"

namespace polymur::shm {
namespace bip = boost::interprocess;

namespace {

size_t round_up(size_t value, size_t unit) { return (value + unit - 1) / unit * unit; }

size_t rings_offset() { return round_up(sizeof(QueueHeader), kPage); }
size_t data_offset(uint32_t ring_count) { return rings_offset() + round_up(ring_count * sizeof(RingControl), kPage); }
size_t file_size_for(QueueGeometry g) { return data_offset(g.ring_count) + g.ring_count * g.ring_capacity; }

// file_size_for() of a geometry read from a file, whose numbers may be anything: false when the
// size does not fit in 64 bits (2 rings of 2^63 bytes once wrapped to a size a tiny file passed).
bool checked_file_size(QueueGeometry g, uint64_t& size) {
    uint64_t controls = 0, rings = 0, offset = 0;
    if (__builtin_mul_overflow(uint64_t(g.ring_count), uint64_t(sizeof(RingControl)), &controls) ||
        __builtin_add_overflow(controls, uint64_t(kPage - 1), &offset))
        return false;
    offset = rings_offset() + offset / kPage * kPage;
    if (__builtin_mul_overflow(uint64_t(g.ring_count), g.ring_capacity, &rings) ||
        __builtin_add_overflow(offset, rings, &size))
        return false;
    return size <= uint64_t(std::numeric_limits<off_t>::max());
}

bool read_header(const std::string& path, QueueHeader& header, off_t& size, std::string& error) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        error = "queue file " + path + ": " + std::strerror(errno);
        return false;
    }
    struct stat st = {};
    fstat(fd.get(), &st);
    size = st.st_size;
    if (static_cast<size_t>(size) < sizeof(QueueHeader) ||
        pread(fd.get(), &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header)) {
        error = "queue file " + path + " is truncated (" + std::to_string(size) +
            " bytes); move it away to start with an empty queue";
        return false;
    }
    return true;
}

}  // namespace

QueueGeometry geometry_for(uint32_t producer_count, uint64_t queue_bytes) {
    QueueGeometry g;
    g.ring_count = producer_count;
    const uint64_t overhead = data_offset(producer_count);
    const uint64_t data = queue_bytes > overhead ? queue_bytes - overhead : 0;
    g.ring_capacity = std::max<uint64_t>(data / producer_count / kPage * kPage, 1 << 20);
    return g;
}

namespace {

constexpr uint64_t kMinRingCapacity = 64 * 1024;

uint64_t free_bytes_of(const std::string& path) { return filesystem_free_bytes(path); }

// Allocates [0, size) of `fd` on disk. Returns 0 or an errno value.
int allocate(int fd, uint64_t size) {
    int rc = posix_fallocate(fd, 0, static_cast<off_t>(size));
    return rc == EINTR ? posix_fallocate(fd, 0, static_cast<off_t>(size)) : rc;
}

std::string mib(uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f MiB", bytes / 1048576.0);
    return text;
}

// Creates `path` with `geometry`, every byte allocated. Returns 0 or an errno value; the file is
// gone again on failure.
int create_allocated(const std::string& path, std::string_view destination, QueueGeometry geometry,
                     std::string& error) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd) {
        int err = errno;
        error = "queue file " + path + ": cannot create: " + std::strerror(err);
        return err;
    }
    const uint64_t size = queue_file_size(geometry);
    if (int err = allocate(fd.get(), size)) {
        error = "queue file " + path + ": cannot allocate " + std::to_string(size) + " bytes: " + std::strerror(err);
        unlink(path.c_str());
        return err;
    }
    QueueHeader header {};
    header.magic = kQueueMagic;
    header.layout_version = kQueueLayoutVersion;
    header.header_size = sizeof(QueueHeader);
    header.ring_control_size = sizeof(RingControl);
    header.ring_count = geometry.ring_count;
    header.ring_capacity = geometry.ring_capacity;
    header.file_size = size;
    header.created_unix_ns = realtime_ns();
    header.space_reserved.store(1, std::memory_order_relaxed);
    std::memcpy(header.destination, destination.data(), std::min(destination.size(), kDestinationTextMax - 1));
    if (pwrite(fd.get(), &header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) || fsync(fd.get()) != 0) {
        int err = errno ? errno : EIO;
        error = "queue file " + path + ": cannot write header: " + std::strerror(err);
        unlink(path.c_str());
        return err;
    }
    return 0;
}

}  // namespace

uint64_t queue_file_size(QueueGeometry geometry) { return file_size_for(geometry); }

uint64_t filesystem_free_bytes(const std::string& path) {
    std::string at = path.empty() ? "." : path;
    struct statvfs vfs = {};
    while (statvfs(at.c_str(), &vfs) != 0) {
        size_t slash = at.find_last_of('/');
        if (errno != ENOENT || at == "/" || at == ".") return 0;
        at = slash == std::string::npos ? "." : slash == 0 ? "/" : at.substr(0, slash);
    }
    return static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
}

std::unique_ptr<QueueFile> QueueFile::open_or_create(const std::string& path, std::string_view destination,
                                                     QueueGeometry geometry, uint64_t max_bytes,
                                                     QueueSpaceReport& space, std::string& error) {
    space = QueueSpaceReport {};
    space.wanted_bytes = file_size_for(geometry);
    if (access(path.c_str(), F_OK) == 0) {
        auto existing = open(path, error);
        if (!existing) return nullptr;
        space.rolled_back_bytes = existing->roll_back_to_synced();
        const QueueHeader& h = existing->header();
        const bool same = h.ring_count == geometry.ring_count && h.ring_capacity == geometry.ring_capacity;
        if (same || existing->queued_bytes() != 0) {
            if (!same) return migrate(std::move(existing), destination, geometry, max_bytes, space, error);
            // Kept as it is (it holds lines, or is what was asked for): make sure it is allocated.
            std::string why;
            if (!existing->reserve_space(why)) {
                if (existing->queued_bytes() != 0) {
                    space.free_bytes = free_bytes_of(path);
                    space.problem = why;
                    return existing;
                }
            } else {
                return existing;
            }
        }
        // Empty and either another geometry or not allocatable as it is: start it again.
        existing.reset();
        unlink(path.c_str());
    }
    return create(path, destination, geometry, max_bytes, space, error);
}

std::unique_ptr<QueueFile> QueueFile::create(const std::string& path, std::string_view destination,
                                             QueueGeometry geometry, uint64_t max_bytes, QueueSpaceReport& space,
                                             std::string& error) {
    space.wanted_bytes = file_size_for(geometry);
    space.free_bytes = free_bytes_of(path);
    // Leave a little for the small files of the state directory (runtime-destinations, locks).
    constexpr uint64_t kReserveBytes = 1 << 20;
    const uint64_t budget =
        std::min(max_bytes, space.free_bytes > kReserveBytes ? space.free_bytes - kReserveBytes : 0);
    QueueGeometry g = geometry;
    // Shrink to what the budget holds (whole pages per ring), then halve while allocation fails.
    if (file_size_for(g) > budget) {
        const uint64_t overhead = data_offset(g.ring_count);
        const uint64_t fits = budget > overhead ? (budget - overhead) / g.ring_count / kPage * kPage : 0;
        g.ring_capacity = std::max(fits, std::min(kMinRingCapacity, g.ring_capacity));
    }
    for (;;) {
        int err = create_allocated(path, destination, g, error);
        if (err == 0) break;
        if ((err != ENOSPC && err != EDQUOT && err != EFBIG) || g.ring_capacity / 2 < kMinRingCapacity) {
            if (err == ENOSPC || err == EDQUOT)
                error = "queue file " + path + ": no room for even the smallest queue (" + mib(file_size_for(g)) +
                    "); " + mib(free_bytes_of(path)) + " free on the file system of the state directory";
            return nullptr;
        }
        g.ring_capacity = g.ring_capacity / 2 / kPage * kPage;
    }
    space.allocated_bytes = file_size_for(g);
    if (g.ring_capacity != geometry.ring_capacity)
        space.problem = "needs " + std::to_string(space.wanted_bytes) + " bytes (" + mib(space.wanted_bytes) +
            ") but " + std::to_string(space.free_bytes) + " bytes (" + mib(space.free_bytes) + ") are free" +
            (max_bytes < space.free_bytes ? " to share with other destinations" : "") + "; running with a queue of " +
            std::to_string(space.allocated_bytes) + " bytes (" + mib(space.allocated_bytes) + ")";
    error.clear();
    return open(path, error);
}

bool QueueFile::sync(std::string& error) {
    if (region_.flush(0, 0, false)) return true;
    error = "queue file " + path_ + ": cannot write back: " + std::strerror(errno);
    return false;
}

bool QueueFile::reserve_space(std::string& error) {
    UniqueFd fd(::open(path_.c_str(), O_RDWR | O_CLOEXEC));
    int err = fd ? allocate(fd.get(), header_->file_size) : errno;
    if (err != 0) {
        error = "cannot allocate its " + std::to_string(header_->file_size) + " bytes (" + mib(header_->file_size) +
            "): " + std::strerror(err) + "; " + mib(free_bytes_of(path_)) + " free";
        header_->space_reserved.store(0, std::memory_order_release);
        return false;
    }
    header_->space_reserved.store(1, std::memory_order_release);
    return true;
}

std::unique_ptr<QueueFile> QueueFile::open(const std::string& path, std::string& error) {
    QueueHeader header {};
    off_t size = 0;
    if (!read_header(path, header, size, error)) return nullptr;
    if (header.magic != kQueueMagic) {
        error = "queue file " + path + " is not a polymur queue (bad magic); move it away";
        return nullptr;
    }
    if (header.layout_version != kQueueLayoutVersion || header.header_size != sizeof(QueueHeader) ||
        header.ring_control_size != sizeof(RingControl)) {
        error = "queue file " + path + " has layout version " + std::to_string(header.layout_version) +
            " but this polymur reads version " + std::to_string(kQueueLayoutVersion) +
            "; deliver it with the polymur that wrote it, or move it away";
        return nullptr;
    }
    QueueGeometry g {header.ring_count, header.ring_capacity};
    uint64_t expected_size = 0;
    if (g.ring_count == 0 || g.ring_count > kMaxWorkers + 1 || g.ring_capacity == 0 || g.ring_capacity % kPage != 0 ||
        !checked_file_size(g, expected_size) || header.file_size != expected_size) {
        error = "queue file " + path + " has a corrupt header (rings " + std::to_string(g.ring_count) + ", capacity " +
            std::to_string(g.ring_capacity) + "); move it away";
        return nullptr;
    }
    if (static_cast<uint64_t>(size) != header.file_size) {
        error = "queue file " + path + " is truncated (" + std::to_string(size) + " of " +
            std::to_string(header.file_size) + " bytes); move it away";
        return nullptr;
    }
    std::unique_ptr<QueueFile> queue(new QueueFile());
    queue->path_ = path;
    try {
        bip::file_mapping file(path.c_str(), bip::read_write);
        queue->region_ = bip::mapped_region(file, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
        error = "queue file " + path + ": cannot map: " + e.what();
        return nullptr;
    }
    if (!queue->attach(error)) return nullptr;
    return queue;
}

// The rings are written and read in order, a lap taking minutes at moderate rates, so nearly every page a
// producer writes to has not been touched for a long time, and its TLB entry (in a VM, the hypervisor's
// shadow or nested entry too) is long gone: on the 2-core VM of docs/PERFORMANCE.md that cost a listener
// about as much as the lines themselves at 100,000 lines/s. Where the kernel can hold the file in 2 MiB
// folios (ext4 with large folios, kernel 6.x), this asks for them and for mappings of a whole folio at
// once: one entry per 2 MiB instead of 512. Only the ring data, from the first 2 MiB boundary: the header
// and ring controls, rewritten all the time and synced with --sync-interval, stay in small pages, so a sync
// does not write 2 MiB for a changed position. A hint: where it does not apply, nothing changes.
void QueueFile::map_rings_in_huge_pages(char* base) {
    constexpr uintptr_t kHuge = uintptr_t(2) << 20;
    const uintptr_t head = reinterpret_cast<uintptr_t>(data_) % kHuge;
    char* from = head ? data_ + (kHuge - head) : data_;
    char* end = base + region_.get_size();
    char* to = end - reinterpret_cast<uintptr_t>(end) % kHuge;
    if (from < to) madvise(from, static_cast<size_t>(to - from), MADV_HUGEPAGE);
}

QueueFile::~QueueFile() {
    if (region_.get_address()) unregister_queue_mapping(region_.get_address());
}

bool QueueFile::attach(std::string& error) {
    auto* base = static_cast<char*>(region_.get_address());
    register_queue_mapping(base, region_.get_size(), path_);
    header_ = reinterpret_cast<QueueHeader*>(base);
    rings_ = reinterpret_cast<RingControl*>(base + rings_offset());
    data_ = base + data_offset(header_->ring_count);
    map_rings_in_huge_pages(base);
    for (uint32_t i = 0; i < header_->ring_count; ++i) {
        const RingControl& r = rings_[i];
        uint64_t w = r.write_pos.load(), rd = r.read_pos.load();
        if (rd > w || w - rd > header_->ring_capacity) {
            error = "queue file " + path_ + ": ring " + std::to_string(i) + " has read position " + std::to_string(rd) +
                " beyond write position " + std::to_string(w) + " (corrupt); move it away";
            return false;
        }
    }
    return true;
}

uint64_t QueueFile::queued_lines() const {
    uint64_t total = 0;
    for (uint32_t i = 0; i < header_->ring_count; ++i) {
        uint64_t w = rings_[i].lines_written.load(std::memory_order_relaxed);
        uint64_t r = rings_[i].lines_read.load(std::memory_order_relaxed);
        if (w > r) total += w - r;
    }
    return total;
}

uint64_t QueueFile::queued_bytes() const {
    uint64_t total = 0;
    for (uint32_t i = 0; i < header_->ring_count; ++i)
        total +=
            rings_[i].write_pos.load(std::memory_order_relaxed) - rings_[i].read_pos.load(std::memory_order_relaxed);
    return total;
}

uint64_t QueueFile::dropped_lines() const {
    uint64_t total = 0;
    for (uint32_t i = 0; i < header_->ring_count; ++i) total += rings_[i].dropped_full.load(std::memory_order_relaxed);
    return total;
}

void QueueFile::wake_consumer() {
    // Orders the caller's store of write_pos before this load (see wait_for_data).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (header_->consumer_waiting.load(std::memory_order_seq_cst) == 0) return;
    header_->wake_seq.fetch_add(1, std::memory_order_seq_cst);
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&header_->wake_seq), FUTEX_WAKE, 1, nullptr, nullptr, 0);
}

void QueueFile::futex_wait(uint32_t seq, int timeout_ms) {
    struct timespec timeout = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(&header_->wake_seq), FUTEX_WAIT, seq, &timeout, nullptr, 0);
}

namespace {

// How long a repair waits for the other side of a ring to leave its sequence lock. A live process
// is inside for nanoseconds; one that died there never leaves, and its successor repairs it.
constexpr int64_t kSequenceWaitMs = 500;

uint64_t count_lines(const char* data, uint64_t capacity, uint64_t from, uint64_t to) {
    uint64_t lines = 0;
    for (uint64_t pos = from; pos < to; ++pos) lines += data[pos % capacity] == '\n';
    return lines;
}

// A consistent (read_pos, lines_read) pair. False if commit_seq stayed odd for kSequenceWaitMs
// (the consumer died inside commit_read); the values are then the latest seen.
bool read_committed(const RingControl& ring, uint64_t& read_pos, uint64_t& lines_read) {
    const int64_t deadline = monotonic_ms() + kSequenceWaitMs;
    for (uint32_t spins = 0;; ++spins) {
        const uint64_t before = ring.commit_seq.load(std::memory_order_acquire);
        read_pos = ring.read_pos.load(std::memory_order_acquire);
        lines_read = ring.lines_read.load(std::memory_order_relaxed);
        std::atomic_thread_fence(std::memory_order_acquire);
        if (!(before & 1) && ring.commit_seq.load(std::memory_order_relaxed) == before) return true;
        if (spins % 64 == 63 && monotonic_ms() >= deadline) return false;
        sched_yield();
    }
}

// A consistent (write_pos, lines_written) pair, with the same bound as read_committed.
bool read_published_waiting(const RingControl& ring, uint64_t& write_pos, uint64_t& lines_written) {
    const int64_t deadline = monotonic_ms() + kSequenceWaitMs;
    for (uint32_t spins = 0;; ++spins) {
        if (read_published(ring, write_pos, lines_written)) return true;
        if (spins % 64 == 63 && monotonic_ms() >= deadline) return false;
        sched_yield();
    }
}

}  // namespace

// Line counts are only ever used as differences (lines queued = written - read), and the positions
// are the truth. So whichever side repairs its sequence lock recomputes its own count from the
// positions and the other side's count: the difference is then right whatever state the dead
// process left. If the other side's pair is not consistent either (both died inside their locks),
// the repair still completes with the values seen, and the other side's successor, repairing in
// turn, makes the difference right again. No repair waits more than kSequenceWaitMs.
void repair_commit(QueueFile& queue) {
    for (uint32_t i = 0; i < queue.ring_count(); ++i) {
        RingControl& ring = queue.ring(i);
        const uint64_t seq = ring.commit_seq.load(std::memory_order_relaxed);
        if (!(seq & 1)) continue;
        uint64_t write_pos = 0, lines_written = 0;
        if (read_published_waiting(ring, write_pos, lines_written)) {
            const uint64_t read_pos = ring.read_pos.load(std::memory_order_relaxed);
            const uint64_t pending =
                read_pos <= write_pos ? count_lines(queue.ring_data(i), queue.ring_capacity(), read_pos, write_pos) : 0;
            ring.lines_read.store(lines_written - std::min(pending, lines_written), std::memory_order_relaxed);
        }
        ring.commit_seq.store(seq + 1, std::memory_order_release);
    }
}

RingProducer::RingProducer(QueueFile& queue, uint32_t ring_index, uint64_t line_cap)
        : queue_(queue), ring_index_(ring_index), control_(queue.ring(ring_index)), data_(queue.ring_data(ring_index)),
          capacity_(queue.ring_capacity()), line_cap_(line_cap),
          write_pos_(control_.write_pos.load(std::memory_order_relaxed)), write_offset_(write_pos_ % capacity_),
          lines_written_(control_.lines_written.load(std::memory_order_relaxed)),
          cached_read_pos_(control_.read_pos.load(std::memory_order_acquire)),
          cached_lines_read_(control_.lines_read.load(std::memory_order_relaxed)),
          cached_other_lines_(lines_in_other_rings()), space_reserved_(queue.space_reserved()) {
    // A predecessor that died in the middle of publishing left the sequence odd, and its line
    // count may not match its write position: count again from what the consumer committed.
    // (repair_commit explains why this is right even when the consumer died inside its lock too.)
    uint64_t seq = control_.publish_seq.load(std::memory_order_relaxed);
    if (seq & 1) {
        uint64_t read_pos = 0, lines_read = 0;
        read_committed(control_, read_pos, lines_read);
        lines_written_ =
            lines_read + (read_pos <= write_pos_ ? count_lines(data_, capacity_, read_pos, write_pos_) : 0);
        control_.lines_written.store(lines_written_, std::memory_order_relaxed);
        control_.publish_seq.store(seq + 1, std::memory_order_release);
    }
}

uint64_t RingProducer::lines_in_other_rings() const {
    uint64_t total = 0;
    for (uint32_t i = 0; i < queue_.ring_count(); ++i) {
        if (i == ring_index_) continue;
        const RingControl& r = queue_.ring(i);
        uint64_t written = r.lines_written.load(std::memory_order_relaxed);
        uint64_t read = r.lines_read.load(std::memory_order_relaxed);
        if (written > read) total += written - read;
    }
    return total;
}

void RingProducer::refresh() {
    cached_read_pos_ = control_.read_pos.load(std::memory_order_acquire);
    cached_lines_read_ = control_.lines_read.load(std::memory_order_relaxed);
    cached_other_lines_ = lines_in_other_rings();
    space_reserved_ = queue_.space_reserved();
}

bool RingProducer::has_room_for(uint64_t bytes, uint64_t lines) {
    const uint64_t queued_lines = lines_written_ + unpublished_lines_ + lines - 1;
    auto fits = [&] {
        return space_reserved_ && write_pos_ + bytes - cached_read_pos_ <= capacity_ &&
            queued_lines - cached_lines_read_ + cached_other_lines_ < line_cap_;
    };
    if (fits()) return true;
    refresh();
    return fits();
}

bool RingProducer::append(const std::string_view* parts, size_t count, size_t total) {
    if (total > kMaxQueuedLine || !has_room(total)) {
        ++unpublished_drops_;
        return false;
    }
    for (size_t i = 0; i < count; ++i) {
        const std::string_view part = parts[i];
        size_t first = std::min<size_t>(part.size(), capacity_ - write_offset_);
        std::memcpy(data_ + write_offset_, part.data(), first);
        if (first < part.size()) {
            std::memcpy(data_, part.data() + first, part.size() - first);
            write_offset_ = part.size() - first;
        } else {
            write_offset_ += first;
            if (write_offset_ == capacity_) write_offset_ = 0;
        }
        write_pos_ += part.size();
    }
    ++unpublished_lines_;
    return true;
}

bool RingProducer::append_lines(const char* data, size_t bytes, uint64_t lines) {
    if (!has_room_for(bytes, lines)) return false;
    const size_t first = std::min<size_t>(bytes, capacity_ - write_offset_);
    std::memcpy(data_ + write_offset_, data, first);
    if (first < bytes) {
        std::memcpy(data_, data + first, bytes - first);
        write_offset_ = bytes - first;
    } else {
        write_offset_ += first;
        if (write_offset_ == capacity_) write_offset_ = 0;
    }
    write_pos_ += bytes;
    unpublished_lines_ += lines;
    return true;
}

void RingProducer::publish() {
    if (unpublished_drops_) {
        control_.dropped_full.fetch_add(unpublished_drops_, std::memory_order_relaxed);
        unpublished_drops_ = 0;
    }
    if (!unpublished_lines_) return;
    cached_other_lines_ = lines_in_other_rings();
    lines_written_ += unpublished_lines_;
    unpublished_lines_ = 0;
    const uint64_t seq = control_.publish_seq.load(std::memory_order_relaxed);
    control_.publish_seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    control_.lines_written.store(lines_written_, std::memory_order_relaxed);
    control_.write_pos.store(write_pos_, std::memory_order_release);
    control_.publish_seq.store(seq + 2, std::memory_order_release);
    queue_.wake_consumer();
}

void commit_read(RingControl& ring, uint64_t read_pos, uint64_t lines) {
    const uint64_t seq = ring.commit_seq.load(std::memory_order_relaxed);
    ring.commit_seq.store(seq + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    ring.lines_read.store(ring.lines_read.load(std::memory_order_relaxed) + lines, std::memory_order_relaxed);
    ring.read_pos.store(read_pos, std::memory_order_release);
    ring.commit_seq.store(seq + 2, std::memory_order_release);
}

bool read_published(const RingControl& ring, uint64_t& write_pos, uint64_t& lines_written) {
    const uint64_t before = ring.publish_seq.load(std::memory_order_acquire);
    if (before & 1) return false;
    write_pos = ring.write_pos.load(std::memory_order_acquire);
    lines_written = ring.lines_written.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    return ring.publish_seq.load(std::memory_order_relaxed) == before;
}

}  // namespace polymur::shm
