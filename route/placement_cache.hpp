// carbon_ch ring positions of names seen before, so that a name placed once is placed again without its MD5.
//
// Graphite traffic repeats its names: collectd and statsd send every series each 10 to 60 seconds. A position is
// the first two bytes of the MD5 of the name and nothing else, so a remembered one is right whatever the rings
// look like now: a ring rebuilt by putdest or deldest, another cluster of a rules file or a failover walk maps
// it to destinations as it would a freshly hashed one (the position-to-destination lookup is not cached).
//
// Fixed memory, taken once: 8-way sets of 64-byte entries holding the whole name (at most kMaxName bytes;
// longer names are hashed every time) and a 16-bit tag per way in a separate array, so that a lookup compares a
// set's eight tags at once (one 16-byte read) and reads only the entry whose tag matches. An entry answers only
// when its name's bytes are the name's: the tag is a shortcut, never the proof. The pages are mapped untouched
// and take memory as they fill.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace polymur::route {

class PlacementCache {
public:
    static constexpr size_t kMaxName = 60;                      // longer names are not cached
    static constexpr size_t kWays = 8;                          // entries a name may be in
    static constexpr size_t kDefaultEntries = size_t(1) << 17;  // 8 MiB of entries + 256 KiB of tags

    // `entries` is rounded up to a power of two of at least kWays. If the memory cannot be mapped the cache has
    // one set (kWays entries) of its own.
    explicit PlacementCache(size_t entries = kDefaultEntries);
    ~PlacementCache();
    PlacementCache(const PlacementCache&) = delete;
    PlacementCache& operator=(const PlacementCache&) = delete;

    // What a name's set and tag come from (a fast hash, not a cryptographic one).
    static uint64_t hash(std::string_view name);

    // The position remembered for `name`, if any. `hash` is set to hash(name) either way, for insert.
    bool find(std::string_view name, uint64_t& hash, uint32_t& position);
    // The same with `hash` = hash(name) given.
    bool find_hashed(std::string_view name, uint64_t hash, uint32_t& position);
    // For a batch of names: start reading where `hash`'s name would be, so that the lookups of the batch wait for
    // memory side by side rather than one after the other. First the set's tags, then (once those are read) the
    // entry whose tag matches.
    void prefetch_tags(uint64_t hash) const { __builtin_prefetch(tags_ + (hash & set_mask_) * kWays); }
    void prefetch_entry(uint64_t hash) const;

    // Remembers `position` for `name` (`hash` from find). In a full set, a way hit since the last insert that
    // considered it keeps its place (it only loses that mark): names that recur every interval stay, even when
    // more of them than kWays share a set, while a name no longer sent gives way.
    void insert(std::string_view name, uint64_t hash, uint32_t position);

    size_t entries() const { return entries_; }
    size_t bytes() const;  // the memory mapped for it (taken as it fills); 0 if that failed

private:
    struct Entry {
        uint16_t position;  // metric positions are two MD5 bytes
        uint8_t size;
        uint8_t hit;  // looked up since an insert last considered evicting it
        char name[kMaxName];
    };
    static_assert(sizeof(Entry) == 64);

    uint16_t* tags_;  // per way; 0: empty
    Entry* entries_table_;
    size_t entries_;
    size_t set_mask_ = 0;
    Entry fallback_entries_[kWays] = {};  // if the memory cannot be mapped
    uint16_t fallback_tags_[kWays] = {};
    size_t hand_ = 0;  // turns over the ways an insert into a full set considers
};

// Makes carbon_ch_position (and CarbonChAhead) on this thread look names up in `cache` first and remember
// the positions they compute there; nullptr: no cache (the default). The caller keeps `cache` alive meanwhile.
void use_placement_cache(PlacementCache* cache);
PlacementCache* placement_cache();  // this thread's, or nullptr

}  // namespace polymur::route
