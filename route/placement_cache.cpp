#include "route/placement_cache.hpp"

#include <sys/mman.h>

#include <cstring>

namespace polymur::route {

namespace {

[[gnu::always_inline]] inline uint64_t load64(const char* p) {
    uint64_t word;
    std::memcpy(&word, p, sizeof word);
    return word;
}

[[gnu::always_inline]] inline uint32_t load32(const char* p) {
    uint32_t word;
    std::memcpy(&word, p, sizeof word);
    return word;
}

// One 64x64->128-bit multiply, its halves folded: every bit of the result depends on every bit of the input.
[[gnu::always_inline]] inline uint64_t mix(uint64_t state, uint64_t word) {
    const unsigned __int128 product = static_cast<unsigned __int128>(state ^ word) * 0x9e3779b97f4a7c15ull;
    return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

// The set comes from the low bits of the hash, the tag from the high ones; 0 marks an empty way.
[[gnu::always_inline]] inline uint16_t tag_of(uint64_t hash) {
    const auto tag = static_cast<uint16_t>(hash >> 48);
    return tag ? tag : 1;
}

// Bit 16k+15 set for each 16-bit lane k of `x` that is zero, and perhaps for lanes above such a lane (a borrow
// runs on): the lowest bit set always marks a zero lane.
[[gnu::always_inline]] inline uint64_t zero_lanes(uint64_t x) {
    constexpr uint64_t kOnes = 0x0001000100010001ull, kHighs = 0x8000800080008000ull;
    return (x - kOnes) & ~x & kHighs;
}

// Whether the first name.size() bytes at `stored` are `name`'s (8 bytes at a time; both have 8 readable).
[[gnu::always_inline]] inline bool same_bytes(const char* stored, std::string_view name) {
    const char* p = name.data();
    const size_t n = name.size();
    if (n < 8) return n == 0 || std::memcmp(stored, p, n) == 0;
    uint64_t differ = load64(stored + n - 8) ^ load64(p + n - 8);
    for (size_t i = 0; i + 8 < n; i += 8) differ |= load64(stored + i) ^ load64(p + i);
    return differ == 0;
}

[[gnu::always_inline]] inline uint64_t hash_of(std::string_view name) {
    const char* p = name.data();
    size_t n = name.size();
    uint64_t state = 0x243f6a8885a308d3ull ^ n;
    if (n >= 8) {
        for (; n > 8; p += 8, n -= 8) state = mix(state, load64(p));
        return mix(state, load64(p + n - 8));  // the last 8 bytes (some of them hashed already)
    }
    if (n >= 4) return mix(state, load32(p) | uint64_t(load32(p + n - 4)) << 32);
    if (n > 0) return mix(state, uint8_t(p[0]) | uint64_t(uint8_t(p[n / 2])) << 8 | uint64_t(uint8_t(p[n - 1])) << 16);
    return mix(state, 0);
}

size_t mapped_bytes(size_t entries) { return entries * (64 + sizeof(uint16_t)); }

thread_local PlacementCache* t_cache = nullptr;

}  // namespace

PlacementCache::PlacementCache(size_t entries) {
    static_assert(kWays == 8, "find and insert read a set's tags as two 64-bit words");
    size_t rounded = kWays;
    while (rounded < entries) rounded *= 2;
    void* memory = ::mmap(nullptr, mapped_bytes(rounded), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) {  // the one set inside the object: still right, just small
        entries_table_ = fallback_entries_;
        tags_ = fallback_tags_;
        entries_ = kWays;
        return;
    }
    // Huge pages where the kernel has them for the asking: a lookup lands anywhere in megabytes, and with 4 KiB
    // pages nearly every one would miss the TLB.
    ::madvise(memory, mapped_bytes(rounded), MADV_HUGEPAGE);
    entries_table_ = static_cast<Entry*>(memory);  // page-aligned: every entry is one cache line
    tags_ = reinterpret_cast<uint16_t*>(entries_table_ + rounded);
    entries_ = rounded;
    set_mask_ = rounded / kWays - 1;
}

PlacementCache::~PlacementCache() {
    if (entries_table_ != fallback_entries_) ::munmap(entries_table_, mapped_bytes(entries_));
    if (t_cache == this) t_cache = nullptr;
}

size_t PlacementCache::bytes() const { return entries_table_ != fallback_entries_ ? mapped_bytes(entries_) : 0; }

uint64_t PlacementCache::hash(std::string_view name) { return hash_of(name); }

bool PlacementCache::find(std::string_view name, uint64_t& hash, uint32_t& position) {
    if (name.size() > kMaxName) return false;
    hash = hash_of(name);
    return find_hashed(name, hash, position);
}

void PlacementCache::prefetch_entry(uint64_t hash) const {
    const size_t first = (hash & set_mask_) * kWays;
    const uint64_t spread = 0x0001000100010001ull * tag_of(hash);
    for (size_t half = 0; half < kWays; half += 4) {
        uint64_t tags;
        std::memcpy(&tags, tags_ + first + half, sizeof tags);
        if (const uint64_t match = zero_lanes(tags ^ spread)) {
            __builtin_prefetch(entries_table_ + first + half + size_t(__builtin_ctzll(match)) / 16);
            return;
        }
    }
}

bool PlacementCache::find_hashed(std::string_view name, uint64_t hash, uint32_t& position) {
    if (name.size() > kMaxName) return false;
    const size_t first = (hash & set_mask_) * kWays;
    const uint64_t spread = 0x0001000100010001ull * tag_of(hash);
    for (size_t half = 0; half < kWays; half += 4) {
        uint64_t tags;
        std::memcpy(&tags, tags_ + first + half, sizeof tags);
        for (uint64_t match = zero_lanes(tags ^ spread); match != 0; match &= match - 1) {
            Entry& entry = entries_table_[first + half + size_t(__builtin_ctzll(match)) / 16];
            if (entry.size != name.size() || !same_bytes(entry.name, name)) continue;
            entry.hit = 1;
            position = entry.position;
            return true;
        }
    }
    return false;
}

void PlacementCache::insert(std::string_view name, uint64_t hash, uint32_t position) {
    if (name.size() > kMaxName) return;
    const size_t first = (hash & set_mask_) * kWays;
    size_t victim = first + kWays;
    for (size_t half = 0; half < kWays; half += 4) {
        uint64_t tags;
        std::memcpy(&tags, tags_ + first + half, sizeof tags);
        if (const uint64_t empty = zero_lanes(tags)) {  // ways fill in order and are never emptied
            victim = first + half + size_t(__builtin_ctzll(empty)) / 16;
            break;
        }
    }
    for (size_t way = first; way < victim; ++way) {  // there already: the same name twice in one batch
        const Entry& entry = entries_table_[way];
        if (tags_[way] == tag_of(hash) && entry.size == name.size() && same_bytes(entry.name, name)) return;
    }
    if (victim == first + kWays) {
        victim = first + (hand_++ & (kWays - 1));
        if (entries_table_[victim].hit) {
            entries_table_[victim].hit = 0;  // recurring: it stays, unless the next insert to choose it finds it unused
            return;
        }
    }
    Entry& entry = entries_table_[victim];
    entry.position = static_cast<uint16_t>(position);
    entry.size = static_cast<uint8_t>(name.size());
    entry.hit = 0;
    if (!name.empty()) std::memcpy(entry.name, name.data(), name.size());
    tags_[victim] = tag_of(hash);
}

void use_placement_cache(PlacementCache* cache) { t_cache = cache; }

PlacementCache* placement_cache() { return t_cache; }

}  // namespace polymur::route
