// --sync-interval: bounded loss when the machine itself goes down. A line in a queue survives any
// process crash through the page cache; a power loss takes what the kernel had not written back,
// and in no particular order. The output process syncs its queue file every interval and records,
// durably, how far the sync reached; a start in another boot rolls back to that point.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <fstream>
#include <string>

#include "shm/queue.hpp"

namespace polymur::shm {
namespace {

constexpr size_t kBootIdSize = sizeof(QueueHeader::synced_boot_id);

// This boot's id as 32 hex digits (no dashes); false when the kernel does not say.
bool current_boot_id(char (&out)[kBootIdSize]) {
    std::ifstream in("/proc/sys/kernel/random/boot_id");
    std::string text;
    if (!std::getline(in, text)) return false;
    size_t n = 0;
    for (char c : text)
        if (std::isxdigit(static_cast<unsigned char>(c)) && n < kBootIdSize) out[n++] = c;
    return n == kBootIdSize;
}

bool is_unset(const char (&id)[kBootIdSize]) {
    for (char c : id)
        if (c) return false;
    return true;
}

}  // namespace

bool QueueFile::sync_published(int fd) {
    uint64_t positions[kMaxWorkers + 1], lines[kMaxWorkers + 1];
    bool consistent[kMaxWorkers + 1];
    const uint32_t rings = std::min<uint32_t>(header_->ring_count, kMaxWorkers + 1);
    for (uint32_t i = 0; i < rings; ++i) {
        consistent[i] = false;
        // A producer that died mid-publish leaves the pair inconsistent; that ring keeps its last
        // synced pair until its successor repairs it.
        for (int attempt = 0; attempt < 1000 && !consistent[i]; ++attempt)
            consistent[i] = read_published(rings_[i], positions[i], lines[i]);
    }
    if (fdatasync(fd) != 0) return false;
    for (uint32_t i = 0; i < rings; ++i) {
        if (!consistent[i]) continue;
        rings_[i].synced_lines.store(lines[i], std::memory_order_relaxed);
        rings_[i].synced_write_pos.store(positions[i], std::memory_order_release);
    }
    char boot[kBootIdSize];
    if (current_boot_id(boot) && std::memcmp(header_->synced_boot_id, boot, kBootIdSize) != 0)
        std::memcpy(header_->synced_boot_id, boot, kBootIdSize);
    // The header and ring controls are the first pages of the mapping.
    return msync(header_, reinterpret_cast<char*>(data_) - reinterpret_cast<char*>(header_), MS_SYNC) == 0;
}

uint64_t QueueFile::roll_back_to_synced() {
    if (is_unset(header_->synced_boot_id)) return 0;
    char boot[kBootIdSize];
    if (!current_boot_id(boot) || std::memcmp(header_->synced_boot_id, boot, kBootIdSize) == 0) return 0;
    uint64_t given_up = 0;
    for (uint32_t i = 0; i < header_->ring_count; ++i) {
        RingControl& r = rings_[i];
        const uint64_t synced = r.synced_write_pos.load(std::memory_order_relaxed);
        const uint64_t write_pos = r.write_pos.load(std::memory_order_relaxed);
        const uint64_t read_pos = r.read_pos.load(std::memory_order_relaxed);
        if (write_pos <= synced) continue;
        // What the output had delivered beyond the synced point needs no data; the rest is cut.
        const bool delivered_beyond = read_pos > synced;
        const uint64_t keep = delivered_beyond ? read_pos : synced;
        given_up += write_pos - keep;
        r.lines_written.store(delivered_beyond ? r.lines_read.load(std::memory_order_relaxed)
                                               : r.synced_lines.load(std::memory_order_relaxed),
                              std::memory_order_relaxed);
        r.write_pos.store(keep, std::memory_order_relaxed);
        const uint64_t seq = r.publish_seq.load(std::memory_order_relaxed);
        r.publish_seq.store(seq + (seq & 1), std::memory_order_release);
    }
    forget_sync();
    return given_up;
}

void QueueFile::forget_sync() {
    if (is_unset(header_->synced_boot_id)) return;
    std::memset(header_->synced_boot_id, 0, kBootIdSize);
    msync(header_, reinterpret_cast<char*>(data_) - reinterpret_cast<char*>(header_), MS_SYNC);
}

}  // namespace polymur::shm
