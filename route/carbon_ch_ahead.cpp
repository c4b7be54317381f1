#include "route/carbon_ch_ahead.hpp"

#include <algorithm>
#include <cstring>

#include "route/hash_ring.hpp"
#include "route/md5_steps.hpp"

namespace polymur::route {

namespace {

// 16 lanes of 32 bits. GCC and Clang lower the operators to whatever registers the function they are
// inlined into is compiled for: one AVX-512, two AVX2 or four SSE2 registers per vector.
typedef uint32_t Lanes __attribute__((vector_size(64)));
static_assert(sizeof(Lanes) / sizeof(uint32_t) == kAheadBatch);

// MD5 on 16 messages at once: word k of every lane's block is m[k]. Macros, not functions: a function
// taking a 64-byte vector by value changes ABI with the target.
#define MD5_F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MD5_G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define MD5_H(x, y, z) ((x) ^ (y) ^ (z))
#define MD5_I(x, y, z) ((y) ^ ((x) | ~(z)))
#define MD5_STEP(f, a, b, c, d, k, t, s)                               \
    do {                                                               \
        const Lanes sum = (a) + MD5_##f(b, c, d) + m[k] + uint32_t(t); \
        (a) = (b) + ((sum << (s)) | (sum >> (32 - (s))));              \
    } while (0);

// The first state word of each lane's digest, for one-block messages (what carbon_ch reads).
[[gnu::always_inline]] inline void md5_first_words(const Lanes* m, Lanes* first) {
    Lanes a = Lanes {} + 0x67452301u, b = Lanes {} + 0xefcdab89u, c = Lanes {} + 0x98badcfeu,
          d = Lanes {} + 0x10325476u;
    // Only `a` is read at the end: the compiler drops the last three steps, which change b, c and d.
    POLYMUR_MD5_STEPS(MD5_STEP)
    *first = a + 0x67452301u;
}

#undef MD5_STEP
#undef MD5_I
#undef MD5_H
#undef MD5_G
#undef MD5_F

// One copy per instruction set, each the same source; the widest the CPU has is used (chosen once, at start).
// No build flag: the same binary runs on any x86-64.
using Kernel = void (*)(const Lanes*, Lanes*);
void md5_first_words_baseline(const Lanes* m, Lanes* first) { md5_first_words(m, first); }
#if defined(__x86_64__)
__attribute__((target("avx2"))) void md5_first_words_avx2(const Lanes* m, Lanes* first) { md5_first_words(m, first); }
__attribute__((target("avx512f"))) void md5_first_words_avx512(const Lanes* m, Lanes* first) {
    md5_first_words(m, first);
}
#endif

Kernel kernel_for(VectorWidth width) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (width == VectorWidth::avx512 && __builtin_cpu_supports("avx512f")) return md5_first_words_avx512;
    if (width == VectorWidth::avx2 && __builtin_cpu_supports("avx2")) return md5_first_words_avx2;
#endif
    return width == VectorWidth::baseline ? md5_first_words_baseline : nullptr;
}

Kernel widest_kernel() {
    for (VectorWidth width : {VectorWidth::avx512, VectorWidth::avx2, VectorWidth::baseline})
        if (Kernel kernel = kernel_for(width)) return kernel;
    return md5_first_words_baseline;
}

Kernel g_kernel = widest_kernel();

// Below this many one-block names, hashing them one at a time costs less than a 16-lane pass.
constexpr size_t kLanesWorthIt = 3;

// m[k][lane] = blocks[lane][k]: each lane's block into word k of every lane, 4x4 words at a time.
void transpose(const uint32_t (&blocks)[kAheadBatch][16], uint32_t (&m)[16][kAheadBatch]) {
    typedef uint32_t Quad __attribute__((vector_size(16)));
    for (size_t lanes = 0; lanes < kAheadBatch; lanes += 4) {
        for (size_t words = 0; words < 16; words += 4) {
            Quad r[4];
            for (size_t i = 0; i < 4; ++i) std::memcpy(&r[i], &blocks[lanes + i][words], sizeof(Quad));
            const Quad t0 = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);
            const Quad t1 = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);
            const Quad t2 = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);
            const Quad t3 = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);
            const Quad columns[4] = {
                __builtin_shufflevector(t0, t2, 0, 1, 4, 5), __builtin_shufflevector(t0, t2, 2, 3, 6, 7),
                __builtin_shufflevector(t1, t3, 0, 1, 4, 5), __builtin_shufflevector(t1, t3, 2, 3, 6, 7)};
            for (size_t j = 0; j < 4; ++j) std::memcpy(&m[words + j][lanes], &columns[j], sizeof(Quad));
        }
    }
}

// Hashes up to 16 names shorter than 56 bytes side by side.
void one_block_positions(const std::string_view* names, size_t count, uint32_t* positions) {
    alignas(64) uint32_t blocks[kAheadBatch][16];  // each lane's padded block (lanes past count: zeros)
    for (size_t lane = 0; lane < kAheadBatch; ++lane) {
        auto* block = reinterpret_cast<uint8_t*>(blocks[lane]);
        std::memset(block, 0, 64);
        if (lane >= count) continue;
        const std::string_view name = names[lane];
        std::memcpy(block, name.data(), name.size());
        block[name.size()] = 0x80;
        const uint64_t bits = uint64_t(name.size()) * 8;
        std::memcpy(block + 56, &bits, sizeof bits);  // little-endian, as on every host polymur builds for
    }
    alignas(64) uint32_t m[16][kAheadBatch];  // m[k][lane]: word k of that lane's block
    transpose(blocks, m);
    alignas(64) uint32_t first[kAheadBatch];
    g_kernel(reinterpret_cast<const Lanes*>(m), reinterpret_cast<Lanes*>(first));
    // Digest bytes 0 and 1 are the low two bytes of the first state word (little-endian).
    for (size_t lane = 0; lane < count; ++lane)
        positions[lane] = (first[lane] & 0xff) << 8 | ((first[lane] >> 8) & 0xff);
}

thread_local CarbonChAhead* t_ahead = nullptr;

}  // namespace

bool use_vector_width(VectorWidth width) {
    Kernel kernel = kernel_for(width);
    if (kernel) g_kernel = kernel;
    return kernel != nullptr;
}

void carbon_ch_positions(const std::string_view* names, size_t count, uint32_t* positions) {
    std::string_view batch[kAheadBatch];
    size_t index[kAheadBatch];
    uint32_t found[kAheadBatch];
    size_t batched = 0;
    const auto flush = [&] {
        if (batched >= kLanesWorthIt) {
            one_block_positions(batch, batched, found);
            for (size_t k = 0; k < batched; ++k) positions[index[k]] = found[k];
        } else {
            for (size_t k = 0; k < batched; ++k) positions[index[k]] = carbon_ch_position(batch[k]);
        }
        batched = 0;
    };
    for (size_t i = 0; i < count; ++i) {
        if (names[i].size() >= 56) {
            positions[i] = carbon_ch_position(names[i]);
            continue;
        }
        batch[batched] = names[i];
        index[batched++] = i;
        if (batched == kAheadBatch) flush();
    }
    flush();
}

CarbonChAhead::CarbonChAhead(const std::string_view* names, size_t count) : outer_(t_ahead) {
    std::string_view short_names[kAheadBatch];
    for (size_t i = 0; i < std::min(count, kAheadBatch); ++i) {
        if (names[i].empty() || names[i].size() >= 56) continue;
        short_names[count_] = names[i];
        data_[count_] = names[i].data();
        size_[count_++] = names[i].size();
    }
    if (count_ >= kLanesWorthIt) one_block_positions(short_names, count_, position_);
    else count_ = 0;  // too few to gain anything: looked up one at a time, as without this
    t_ahead = this;
}

CarbonChAhead::~CarbonChAhead() { t_ahead = outer_; }

bool CarbonChAhead::find(std::string_view key, uint32_t& position) {
    CarbonChAhead* ahead = t_ahead;
    if (ahead == nullptr || ahead->count_ == 0) return false;
    for (size_t step = 0, i = ahead->next_; step < ahead->count_; ++step, i = i + 1 == ahead->count_ ? 0 : i + 1) {
        if (ahead->data_[i] == key.data() && ahead->size_[i] == key.size()) {
            position = ahead->position_[i];
            ahead->next_ = i + 1 == ahead->count_ ? 0 : i + 1;
            return true;
        }
    }
    return false;
}

}  // namespace polymur::route
