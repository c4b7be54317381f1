#include "shm/queue_reader.hpp"

#include <algorithm>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace polymur::shm {
namespace {

// Newlines in a span, 16 bytes per step: each compare leaves 0xFF (-1) in the byte lanes that
// hold '\n', subtracted into byte counters that are summed (psadbw) before any can pass 255. One
// pass over the batch, instead of a memchr call per line.
uint64_t count_lines(std::string_view span) {
    const char* p = span.data();
    size_t n = span.size();
    uint64_t lines = 0;
#if defined(__SSE2__)
    const __m128i newline = _mm_set1_epi8('\n');
    while (n >= 16) {
        const size_t blocks = std::min<size_t>(n / 16, 255);
        __m128i counts = _mm_setzero_si128();
        for (size_t i = 0; i < blocks; ++i, p += 16)
            counts =
                _mm_sub_epi8(counts, _mm_cmpeq_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), newline));
        const __m128i sums = _mm_sad_epu8(counts, _mm_setzero_si128());
        lines += static_cast<uint64_t>(_mm_cvtsi128_si64(sums)) +
            static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_unpackhi_epi64(sums, sums)));
        n -= blocks * 16;
    }
#endif
    return lines + static_cast<uint64_t>(std::count(p, p + n, '\n'));
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
    else batch.lines = count_lines(batch.spans[0]) + count_lines(batch.spans[1]);
    next_pos_[ring] = batch.end;
    next_lines_[ring] += batch.lines;
    return true;
}

void QueueReader::commit(uint32_t ring, uint64_t end, uint64_t lines) { commit_read(queue_.ring(ring), end, lines); }

}  // namespace polymur::shm
