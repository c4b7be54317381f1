#include "shm/queue_reader.hpp"

#include <algorithm>
#include <cstring>

namespace polymur::shm {
namespace {

uint64_t count_lines(std::string_view span) {
    uint64_t lines = 0;
    const char* p = span.data();
    const char* stop = p + span.size();
    while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(stop - p))))) {
        ++lines;
        ++p;
    }
    return lines;
}

// Splits [start, end) of a ring (end - start <= capacity) at the wrap.
void spans_of(const char* data, uint64_t capacity, uint64_t start, uint64_t end, std::string_view spans[2]) {
    const uint64_t offset = start % capacity;
    const uint64_t first = std::min(end - start, capacity - offset);
    spans[0] = std::string_view(data + offset, static_cast<size_t>(first));
    spans[1] = std::string_view(data, static_cast<size_t>(end - start - first));
}

}  // namespace

QueueReader::QueueReader(QueueFile& queue) : queue_(queue), capacity_(queue.ring_capacity()) {
    repair_commit(queue);  // the only consumer now: a predecessor may have died mid-commit
    next_pos_.resize(queue.ring_count());
    next_lines_.resize(queue.ring_count());
    rewind();
}

void QueueReader::rewind() {
    for (uint32_t i = 0; i < ring_count(); ++i) {
        next_pos_[i] = queue_.ring(i).read_pos.load(std::memory_order_acquire);
        next_lines_[i] = queue_.ring(i).lines_read.load(std::memory_order_relaxed);
    }
}

bool QueueReader::caught_up() const {
    for (uint32_t i = 0; i < ring_count(); ++i)
        if (queue_.ring(i).write_pos.load(std::memory_order_acquire) != next_pos_[i]) return false;
    return true;
}

bool QueueReader::read(uint32_t ring, uint64_t max_bytes, ReadBatch& batch, bool oversize_ok) {
    const RingControl& control = queue_.ring(ring);
    uint64_t write_pos = 0, published_lines = 0;
    // While a producer is inside its sequence lock (or died there), write_pos alone is still a
    // line boundary with the data in place; only its line count cannot be trusted.
    const bool exact = read_published(control, write_pos, published_lines);
    if (!exact) write_pos = control.write_pos.load(std::memory_order_acquire);
    const uint64_t start = next_pos_[ring];
    const uint64_t available = write_pos - start;
    if (!available) return false;
    const char* data = queue_.ring_data(ring);
    uint64_t take = std::min(available, max_bytes);
    if (take < available) {
        // Cut after the last whole line that fits; a first line longer than that goes alone.
        while (take && data[(start + take - 1) % capacity_] != '\n') --take;
        if (!take) {
            if (!oversize_ok) return false;
            take = 1;
            while (take < available && data[(start + take - 1) % capacity_] != '\n') ++take;
        }
    }
    batch.ring = ring;
    batch.start = start;
    batch.end = start + take;
    spans_of(data, capacity_, start, batch.end, batch.spans);
    if (exact && take == available && published_lines >= next_lines_[ring])
        batch.lines = published_lines - next_lines_[ring];  // the producer counted them already
    else
        batch.lines = count_lines(batch.spans[0]) + count_lines(batch.spans[1]);
    next_pos_[ring] = batch.end;
    next_lines_[ring] += batch.lines;
    return true;
}

void QueueReader::commit(uint32_t ring, uint64_t end, uint64_t lines) { commit_read(queue_.ring(ring), end, lines); }

}  // namespace polymur::shm
