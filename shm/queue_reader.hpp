// The consumer side of a destination queue: a process-local handle over a QueueFile, the
// counterpart of RingProducer. It hands out batches of whole lines as at most two spans (the wrap
// of the ring is resolved here, once), with their line counts, and commits what the destination
// confirmed. Every consumer (the TCP and HTTPS outputs, hash-route failover) reads through it.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "shm/queue.hpp"

namespace polymur::shm {

// Whole lines [start, end) of one ring: spans[0] then spans[1] (empty unless the batch wraps).
struct ReadBatch {
    uint32_t ring = 0;
    uint64_t start = 0;
    uint64_t end = 0;
    uint64_t lines = 0;
    std::string_view spans[2];
    uint64_t bytes() const { return end - start; }
};

class QueueReader {
public:
    // Repairs the commit sequence lock of a consumer that died between the two stores of a commit.
    explicit QueueReader(QueueFile& queue);

    QueueFile& queue() { return queue_; }
    uint32_t ring_count() const { return static_cast<uint32_t>(next_pos_.size()); }

    // The next whole lines of `ring` after what was read so far, at most `max_bytes` of them. When
    // not even one line fits, the first line is taken alone if `oversize_ok`, else nothing is.
    // False when there is nothing (more) to read.
    bool read(uint32_t ring, uint64_t max_bytes, ReadBatch& batch, bool oversize_ok = true);
    // The destination confirmed a batch (batches of a ring are committed in the order read).
    void commit(const ReadBatch& batch) { commit(batch.ring, batch.end, batch.lines); }
    // The destination confirmed `lines` lines of `ring`, up to position `end`.
    void commit(uint32_t ring, uint64_t end, uint64_t lines);
    // Forget what was read and not committed: it is read again (a resend after a reconnect).
    void rewind();
    // Whether every ring has been read as far as its producer published.
    bool caught_up() const;
    // Sleeps until a producer publishes or `timeout_ms` passes, unless data is there already or
    // `keep_waiting()` says no. No wake-up is lost: the emptiness check follows the announcement.
    template <typename KeepWaiting>
    void wait(int timeout_ms, KeepWaiting keep_waiting) {
        queue_.wait_for_data(timeout_ms, [&] { return keep_waiting() && caught_up(); });
    }

private:
    QueueFile& queue_;
    const uint64_t capacity_;
    std::vector<uint64_t> next_pos_;    // per ring: first byte not yet read
    std::vector<uint64_t> next_lines_;  // per ring: lines before next_pos_ since the ring began
};

}  // namespace polymur::shm
