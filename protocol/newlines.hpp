// The newlines of a buffer of received lines, found 64 bytes at a time: one bit mask per block
// (SSE2), walked bit by bit, instead of a memchr call per line. Pure code, no allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace polymur::protocol {

// Calls visit(offset) for the offset of every '\n' in [data, data + size), in order.
template <typename Visit>
void for_each_newline(const char* data, size_t size, Visit&& visit) {
    size_t base = 0;
#if defined(__SSE2__)
    const __m128i newline = _mm_set1_epi8('\n');
    for (; base + 64 <= size; base += 64) {
        uint64_t mask = 0;
        for (int k = 0; k < 4; ++k) {
            const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + base + 16 * k));
            mask |= uint64_t(uint32_t(_mm_movemask_epi8(_mm_cmpeq_epi8(bytes, newline)))) << (16 * k);
        }
        for (; mask; mask &= mask - 1) visit(base + static_cast<size_t>(__builtin_ctzll(mask)));
    }
#endif
    for (const char* p = data + base;
         (p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(data + size - p)))); ++p)
        visit(static_cast<size_t>(p - data));
}

}  // namespace polymur::protocol
