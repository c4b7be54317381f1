#include "route/hash_ring.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "common/enum_names.hpp"
#include "route/carbon_ch_ahead.hpp"
#include "route/md5_steps.hpp"

namespace polymur::route {

namespace {

constexpr HashType kHashTypes[] = {HashType::carbon_ch, HashType::fnv1a_ch, HashType::jump_fnv1a_ch};
constexpr HashCompat kHashCompats[] = {HashCompat::graphite, HashCompat::carbon_c_relay};

}  // namespace

bool parse_hash_type(std::string_view text, HashType& out) {
    return parse_by_name(text, kHashTypes, hash_type_name, out);
}

const char* hash_type_name(HashType type) {
    switch (type) {
        case HashType::carbon_ch: return "carbon_ch";
        case HashType::fnv1a_ch: return "fnv1a_ch";
        case HashType::jump_fnv1a_ch: return "jump_fnv1a_ch";
    }
    return "?";
}

bool parse_hash_compat(std::string_view text, HashCompat& out) {
    return parse_by_name(text, kHashCompats, hash_compat_name, out);
}

const char* hash_compat_name(HashCompat compat) {
    switch (compat) {
        case HashCompat::graphite: return "graphite";
        case HashCompat::carbon_c_relay: return "carbon-c-relay";
    }
    return "?";
}

// ---------------------------------------------------------------------------------------------
// Python str repr

namespace {

// Code points above U+007F that Python 3.11 (Unicode 14) does not consider printable, except the
// unassigned ones (category Cn): that set changes with every Unicode version, so no two Python
// releases agree on it anyway. Host and instance names outside ASCII are rare to begin with.
constexpr std::pair<uint32_t, uint32_t> kNonPrintable[] = {
    {0x80, 0xA0},       {0xAD, 0xAD},         {0x600, 0x605},     {0x61C, 0x61C},     {0x6DD, 0x6DD},
    {0x70F, 0x70F},     {0x890, 0x891},       {0x8E2, 0x8E2},     {0x1680, 0x1680},   {0x180E, 0x180E},
    {0x2000, 0x200F},   {0x2028, 0x202F},     {0x205F, 0x2064},   {0x2066, 0x206F},   {0x3000, 0x3000},
    {0xD800, 0xF8FF},   {0xFEFF, 0xFEFF},     {0xFFF9, 0xFFFB},   {0x110BD, 0x110BD}, {0x110CD, 0x110CD},
    {0x13430, 0x13438}, {0x1BCA0, 0x1BCA3},   {0x1D173, 0x1D17A}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
    {0xF0000, 0xFFFFD}, {0x100000, 0x10FFFD},
};

bool is_printable(uint32_t cp) {
    for (auto [first, last] : kNonPrintable)
        if (cp >= first && cp <= last) return false;
    return true;
}

// Decodes one UTF-8 sequence strictly (no overlongs, no encoded surrogates, <= U+10FFFF).
// Returns its length, or 0 if the byte at s[0] does not start a valid sequence.
size_t decode_utf8(std::string_view s, uint32_t& cp) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
    const uint8_t lead = byte(0);
    size_t length;
    uint32_t min;
    if (lead < 0x80) {
        cp = lead;
        return 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2, min = 0x80, cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3, min = 0x800, cp = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4, min = 0x10000, cp = lead & 0x07;
    } else {
        return 0;
    }
    if (s.size() < length) return 0;
    for (size_t i = 1; i < length; ++i) {
        if ((byte(i) & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (byte(i) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return length;
}

void append_escape(std::string& out, char kind, int digits, uint32_t value) {
    static const char kHex[] = "0123456789abcdef";
    out += '\\';
    out += kind;
    for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(value >> shift) & 0xF];
}

}  // namespace

std::string python_repr(std::string_view utf8) {
    const bool has_single = utf8.find('\'') != std::string_view::npos;
    const bool has_double = utf8.find('"') != std::string_view::npos;
    const char quote = has_single && !has_double ? '"' : '\'';
    std::string out(1, quote);
    for (size_t i = 0; i < utf8.size();) {
        uint32_t cp;
        size_t length = decode_utf8(utf8.substr(i), cp);
        if (length == 0) {  // surrogateescape: an undecodable byte b becomes U+DC00+b
            cp = 0xDC00 + static_cast<uint8_t>(utf8[i]);
            length = 1;
        }
        if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
            out += '\\';
            out += static_cast<char>(cp);
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp < 0x20 || cp == 0x7F) {
            append_escape(out, 'x', 2, cp);
        } else if (cp < 0x7F || is_printable(cp)) {
            out.append(utf8.substr(i, length));
        } else if (cp <= 0xFF) {
            append_escape(out, 'x', 2, cp);
        } else if (cp <= 0xFFFF) {
            append_escape(out, 'u', 4, cp);
        } else {
            append_escape(out, 'U', 8, cp);
        }
        i += length;
    }
    out += quote;
    return out;
}

// ---------------------------------------------------------------------------------------------
// Hash functions

namespace {

// MD5 per RFC 1321, written here because OpenSSL 3 only offers it through EVP, which allocates
// a context per call; lookup must not allocate.
class Md5 {
public:
    // The first digest word of a message shorter than 56 bytes, which pads into one block:
    // no buffering, no second update (metric names are nearly always this short).
    static uint32_t short_message_first_word(std::string_view message) {
        uint8_t block[64] = {};
        std::memcpy(block, message.data(), message.size());
        block[message.size()] = 0x80;
        const uint64_t bits = uint64_t(message.size()) * 8;
        std::memcpy(block + 56, &bits, sizeof bits);
        Md5 md5;
        md5.block(block);
        return md5.state_[0];
    }

    void update(const uint8_t* data, size_t size) {
        total_ += size;
        if (buffered_ > 0) {
            const size_t take = std::min(size, sizeof(buffer_) - buffered_);
            std::memcpy(buffer_ + buffered_, data, take);
            buffered_ += take, data += take, size -= take;
            if (buffered_ < sizeof(buffer_)) return;
            block(buffer_);
            buffered_ = 0;
        }
        for (; size >= 64; data += 64, size -= 64) block(data);
        std::memcpy(buffer_, data, size);
        buffered_ = size;
    }

    void finish(uint8_t digest[16]) {
        const uint64_t bits = total_ * 8;
        static const uint8_t kPadding[64] = {0x80};
        update(kPadding, buffered_ < 56 ? 56 - buffered_ : 120 - buffered_);
        uint8_t length[8];
        for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(bits >> (8 * i));
        update(length, 8);
        for (int i = 0; i < 4; ++i)
            for (int b = 0; b < 4; ++b) digest[4 * i + b] = static_cast<uint8_t>(state_[i] >> (8 * b));
    }

private:
    static uint32_t rotl(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

    // The 64 steps (route/md5_steps.hpp) are unrolled so every function, message index and
    // rotation is a compile-time constant (the rolled loop cost more than the hashing itself).
    static uint32_t F(uint32_t x, uint32_t y, uint32_t z) { return z ^ (x & (y ^ z)); }
    static uint32_t G(uint32_t x, uint32_t y, uint32_t z) { return y ^ (z & (x ^ y)); }
    static uint32_t H(uint32_t x, uint32_t y, uint32_t z) { return x ^ y ^ z; }
    static uint32_t I(uint32_t x, uint32_t y, uint32_t z) { return y ^ (x | ~z); }
    template <uint32_t (*Fn)(uint32_t, uint32_t, uint32_t)>
    static void step(uint32_t& a, uint32_t b, uint32_t c, uint32_t d, uint32_t m, uint32_t t, int s) {
        a = b + rotl(a + Fn(b, c, d) + m + t, s);
    }

    void block(const uint8_t* p) {
        uint32_t m[16];
        std::memcpy(m, p, sizeof m);  // little-endian words, as on every host polymur builds for
        static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);
        uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
#define POLYMUR_MD5_STEP(f, a, b, c, d, k, t, s) step<f>(a, b, c, d, m[k], t, s);
        POLYMUR_MD5_STEPS(POLYMUR_MD5_STEP)
#undef POLYMUR_MD5_STEP
        state_[0] += a, state_[1] += b, state_[2] += c, state_[3] += d;
    }

    uint32_t state_[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    uint8_t buffer_[64];
    size_t buffered_ = 0;
    uint64_t total_ = 0;
};

// 64-bit FNV-1a as carbon-c-relay computes it: it XORs in each byte as a plain `char`, which is
// signed on x86-64, so bytes >= 0x80 are sign-extended. That matters for UTF-8 metric names.
uint64_t fnv1a_64_signed_chars(std::string_view key) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (char c : key) {
        hash ^= static_cast<uint64_t>(static_cast<int64_t>(static_cast<signed char>(c)));
        hash *= 0x100000001b3ULL;
    }
    return hash;
}

// Jump consistent hash (Lamping & Veach, arXiv:1406.2294), with the paper's arithmetic.
uint32_t jump_bucket(uint64_t key, uint32_t buckets) {
    int64_t bucket = -1, next = 0;
    while (next < static_cast<int64_t>(buckets)) {
        bucket = next;
        key = key * 2862933555777941757ULL + 1;
        next = static_cast<int64_t>(static_cast<double>(bucket + 1) *
                                    (static_cast<double>(1LL << 31) / static_cast<double>((key >> 33) + 1)));
    }
    return static_cast<uint32_t>(bucket);
}

// carbon-c-relay derives each further replica's key with one xorshift64* step.
uint64_t next_replica_key(uint64_t key) {
    key ^= key >> 12;
    key ^= key << 25;
    key ^= key >> 27;
    return key * 2685821657736338717ULL;
}

}  // namespace

void md5_digest(const void* data, size_t size, uint8_t digest[16]) {
    Md5 md5;
    md5.update(static_cast<const uint8_t*>(data), size);
    md5.finish(digest);
}

uint32_t carbon_ch_position(std::string_view key) {
    if (uint32_t ahead; CarbonChAhead::find(key, ahead)) return ahead;  // hashed with others (carbon_ch_ahead.hpp)
    if (key.size() < 56) {
        // Digest bytes 0 and 1 are the low two bytes of the first state word (little-endian).
        const uint32_t word = Md5::short_message_first_word(key);
        return (word & 0xff) << 8 | ((word >> 8) & 0xff);
    }
    uint8_t digest[16];
    md5_digest(key.data(), key.size(), digest);
    return uint32_t(digest[0]) << 8 | digest[1];
}

uint32_t fnv1a_ch_position(std::string_view key) {
    uint32_t hash = 0x811c9dc5;
    for (char c : key) {
        hash ^= static_cast<uint8_t>(c);  // carbon hashes the UTF-8 bytes, unsigned
        hash *= 0x01000193;
    }
    return (hash >> 16) ^ (hash & 0xffff);
}

uint32_t fnv1a_ch_position_signed_chars(std::string_view key) {
    uint32_t hash = 0x811c9dc5;
    for (char c : key) {
        hash ^= static_cast<uint32_t>(static_cast<int32_t>(static_cast<signed char>(c)));
        hash *= 0x01000193;
    }
    return (hash >> 16) ^ (hash & 0xffff);
}

// ---------------------------------------------------------------------------------------------
// carbon_ch / fnv1a_ch: carbon's ConsistentHashRing plus ConsistentHashingRouter.getDestinations

namespace {

// std::lower_bound over a ring's sorted positions for a metric's position (< 65536), without a binary search's
// mispredicted branches on every line: where each run of 64 positions starts in the ring is looked up first, and
// the search goes on only within that run's entries (under one in a ring of a few hundred).
class RingIndex {
public:
    void build(const std::vector<uint32_t>& positions) {
        for (uint32_t run = 0; run <= kRuns; ++run)
            start_[run] = static_cast<uint32_t>(std::lower_bound(positions.begin(), positions.end(), run << kRunBits) -
                                                positions.begin());
    }
    size_t lower_bound(const std::vector<uint32_t>& positions, uint32_t position) const {
        const uint32_t run = position >> kRunBits;  // metric positions are two MD5 or FNV bytes: run < kRuns
        if (run >= kRuns)
            return size_t(std::lower_bound(positions.begin(), positions.end(), position) - positions.begin());
        size_t index = start_[run];
        const size_t end = start_[run + 1];
        while (index < end && positions[index] < position) ++index;
        return index;
    }

private:
    static constexpr uint32_t kRunBits = 6;  // 1024 runs: a 4 KiB table, a few entries per run in large rings
    static constexpr uint32_t kRuns = 65536 >> kRunBits;
    uint32_t start_[kRuns + 1];  // start_[r]: the first entry at or after position r * 64
};

class CarbonRing final : public HashRing {
public:
    CarbonRing(HashType type, const std::vector<Destination>& destinations) : type_(type) {
        constexpr int kReplicas = 100;  // ConsistentHashRing's replica_count
        const size_t total = destinations.size() * kReplicas;
        // A taken position is bumped by +1 until free, without wrapping, so positions stay
        // below 65536 + total.
        std::vector<bool> taken(65536 + total + 1, false);
        std::vector<Entry> ring;
        ring.reserve(total);
        for (size_t d = 0; d < destinations.size(); ++d) {
            const Destination& dest = destinations[d];
            for (int i = 0; i < kReplicas; ++i) {
                uint32_t position;
                if (type == HashType::carbon_ch) {
                    // Python: "%s:%d" % ((server, instance), i)
                    // Appended, not "literal" + temporary: GCC 12 -Wrestrict false positive.
                    std::string key = "(";
                    key += python_repr(dest.host);
                    key += ", ";
                    key += dest.instance ? python_repr(*dest.instance) : "None";
                    key += "):";
                    key += std::to_string(i);
                    position = carbon_ch_position(key);
                } else {
                    // Python: "%d-%s" % (i, instance) -- the host is not part of the key
                    position = fnv1a_ch_position(std::to_string(i) + "-" + dest.instance.value_or("None"));
                }
                while (taken[position]) ++position;
                taken[position] = true;
                ring.push_back({position, static_cast<uint16_t>(d)});
            }
        }
        std::sort(ring.begin(), ring.end(), [](const Entry& a, const Entry& b) { return a.position < b.position; });
        positions_.reserve(ring.size());
        for (const Entry& e : ring) {
            positions_.push_back(e.position);
            nodes_.push_back(e.destination);
        }
        // DIVERSE_REPLICAS compares servers (hosts) only; give every host a small id.
        for (size_t d = 0; d < destinations.size(); ++d) {
            size_t first = 0;
            while (destinations[first].host != destinations[d].host) ++first;
            server_of_.push_back(static_cast<uint16_t>(first));
        }
        index_.build(positions_);
    }

    size_t lookup(std::string_view metric, size_t replication, bool diverse, uint16_t* out) const override {
        replication = std::min(replication, kMaxReplication);
        if (replication == 0 || positions_.empty()) return 0;
        const uint32_t position = type_ == HashType::carbon_ch ? carbon_ch_position(metric) : fnv1a_ch_position(metric);
        const size_t ring_len = positions_.size();
        // bisect_left(ring, (position, ())): () sorts before any node, and positions are unique.
        size_t index = index_.lower_bound(positions_, position);
        if (index == ring_len) index = 0;

        size_t written = 0;
        // The consumer side of getDestinations; returns true once enough destinations are out.
        const auto take = [&](uint16_t node) {
            if (diverse) {
                for (size_t k = 0; k < written; ++k)
                    if (server_of_[out[k]] == server_of_[node]) return false;
            }
            out[written++] = node;
            return written >= replication;
        };

        // get_nodes: a one-node ring yields its node once up front and then again from the walk.
        if (server_of_.size() == 1 && take(0)) return written;
        const size_t last_index = index == 0 ? ring_len - 1 : index - 1;  // the walk stops before it
        if (index == last_index) return written;
        // The walk's first entry is a node not seen yet: with one replica wanted, nothing more to track.
        const uint16_t first = nodes_[index];
        if (take(first)) return written;
        uint64_t seen[kMaxRouteDestinations / 64];
        std::fill_n(seen, (server_of_.size() + 63) / 64, 0);
        seen[first / 64] |= uint64_t(1) << (first % 64);
        size_t seen_count = 1;
        index = index + 1 == ring_len ? 0 : index + 1;
        while (seen_count < server_of_.size() && index != last_index) {
            const uint16_t node = nodes_[index];
            if (!(seen[node / 64] >> (node % 64) & 1)) {
                seen[node / 64] |= uint64_t(1) << (node % 64);
                ++seen_count;
                if (take(node)) return written;
            }
            index = index + 1 == ring_len ? 0 : index + 1;
        }
        return written;
    }

    size_t size() const override { return server_of_.size(); }

    std::vector<Entry> entries() const override {
        std::vector<Entry> result;
        for (size_t i = 0; i < positions_.size(); ++i) result.push_back({positions_[i], nodes_[i]});
        return result;
    }

private:
    HashType type_;
    std::vector<uint32_t> positions_;  // sorted ring positions
    std::vector<uint16_t> nodes_;      // destination index of each ring entry
    std::vector<uint16_t> server_of_;  // per destination: index of the first destination on its host
    RingIndex index_;
};

// ---------------------------------------------------------------------------------------------
// carbon_ch / fnv1a_ch as carbon-c-relay 3.7.3 places them (learned by running `carbon-c-relay
// -d -t`, which prints its ring, and `-t`, which prints each metric's destinations):
// - 100 replicas per member. carbon_ch keys are carbon's "('host', 'instance'):i" (None without
//   an instance); fnv1a_ch keys are "i-instance", or "i-host:port" without an instance.
// - fnv1a_ch hashes bytes as signed chars (metric names and keys alike).
// - A taken position is not bumped: every replica stays where it hashed, and all entries at one
//   position route to a single member: for carbon_ch the least (host, instance) with no instance
//   after any instance; for fnv1a_ch the least (host, port); then the member listed first.
// - Lookup: the first entry at or after the metric's position, wrapping; replicas are the next
//   distinct members along the ring (no diverse-replicas rule).

class RelayRing final : public HashRing {
public:
    RelayRing(HashType type, const std::vector<Destination>& destinations) : type_(type) {
        constexpr int kReplicas = 100;
        struct Candidate {
            uint32_t position;
            uint16_t destination;
        };
        std::vector<Candidate> ring;
        ring.reserve(destinations.size() * kReplicas);
        for (size_t d = 0; d < destinations.size(); ++d) {
            const Destination& dest = destinations[d];
            for (int i = 0; i < kReplicas; ++i) {
                uint32_t position;
                if (type == HashType::carbon_ch) {
                    position = carbon_ch_position("('" + dest.host + "', " +
                                                  (dest.instance ? "'" + *dest.instance + "'" : "None") +
                                                  "):" + std::to_string(i));
                } else {
                    position = fnv1a_ch_position_signed_chars(
                        std::to_string(i) + "-" +
                        (dest.instance ? *dest.instance : dest.host + ":" + std::to_string(dest.port)));
                }
                ring.push_back({position, static_cast<uint16_t>(d)});
            }
        }
        const auto wins = [&](uint16_t a, uint16_t b) {  // does member a take a shared position from b?
            const Destination& x = destinations[a];
            const Destination& y = destinations[b];
            if (const int c = x.host.compare(y.host); c != 0) return c < 0;
            if (type_ == HashType::carbon_ch) {
                if (x.instance.has_value() != y.instance.has_value()) return x.instance.has_value();
                if (x.instance && *x.instance != *y.instance) return *x.instance < *y.instance;
            } else if (x.port != y.port) {
                return x.port < y.port;
            }
            return a < b;
        };
        std::sort(ring.begin(), ring.end(), [&](const Candidate& a, const Candidate& b) {
            return a.position != b.position ? a.position < b.position : wins(a.destination, b.destination);
        });
        positions_.reserve(ring.size());
        nodes_.reserve(ring.size());
        for (const Candidate& c : ring) {
            const bool shared = !positions_.empty() && positions_.back() == c.position;
            positions_.push_back(c.position);
            nodes_.push_back(shared ? nodes_.back() : c.destination);  // the winner sorted first
        }
        members_ = destinations.size();
        index_.build(positions_);
    }

    size_t lookup(std::string_view metric, size_t replication, bool /*diverse: carbon-c-relay has none*/,
                  uint16_t* out) const override {
        replication = std::min({replication, kMaxReplication, members_});
        if (replication == 0 || positions_.empty()) return 0;
        const uint32_t position =
            type_ == HashType::carbon_ch ? carbon_ch_position(metric) : fnv1a_ch_position_signed_chars(metric);
        const size_t ring_len = positions_.size();
        size_t index = index_.lower_bound(positions_, position);
        uint64_t seen[kMaxRouteDestinations / 64];
        std::fill_n(seen, (members_ + 63) / 64, 0);
        size_t written = 0;
        for (size_t step = 0; step < ring_len && written < replication; ++step, ++index) {
            if (index == ring_len) index = 0;
            const uint16_t node = nodes_[index];
            if (seen[node / 64] >> (node % 64) & 1) continue;
            seen[node / 64] |= uint64_t(1) << (node % 64);
            out[written++] = node;
        }
        return written;
    }

    size_t size() const override { return members_; }

    std::vector<Entry> entries() const override {
        std::vector<Entry> result;
        for (size_t i = 0; i < positions_.size(); ++i) result.push_back({positions_[i], nodes_[i]});
        return result;
    }

private:
    HashType type_;
    std::vector<uint32_t> positions_;  // sorted, repeated where replicas collide
    std::vector<uint16_t> nodes_;      // the member each entry routes to
    size_t members_ = 0;
    RingIndex index_;
};

// ---------------------------------------------------------------------------------------------
// jump_fnv1a_ch: carbon-c-relay's cluster of that type

// carbon-c-relay's bucket order: destinations with an instance first, ordered by instance
// (numerically when both parse completely as integers, else bytewise), then those without one
// in the order given. That comparison is not a strict weak order when numeric and non-numeric
// instances mix, so the result depends on the sort algorithm: glibc's qsort is a top-down merge
// sort that takes from the left run on ties, which this reproduces.
int compare_for_jump(const Destination& a, size_t a_index, const Destination& b, size_t b_index) {
    if (!a.instance && !b.instance) return static_cast<int>(a_index) - static_cast<int>(b_index);
    if (!a.instance) return 1;
    if (!b.instance) return -1;
    char* end;
    const long a_value = std::strtol(a.instance->c_str(), &end, 10);
    if (*end == '\0') {
        const long b_value = std::strtol(b.instance->c_str(), &end, 10);
        if (*end == '\0')  // (int)(a - b) in the C code: wraps and truncates
            return static_cast<int>(static_cast<unsigned long>(a_value) - static_cast<unsigned long>(b_value));
    }
    return std::strcmp(a.instance->c_str(), b.instance->c_str());
}

void merge_sort_for_jump(std::vector<uint16_t>& order, size_t begin, size_t end,
                         const std::vector<Destination>& destinations) {
    if (end - begin < 2) return;
    const size_t middle = begin + (end - begin) / 2;
    merge_sort_for_jump(order, begin, middle, destinations);
    merge_sort_for_jump(order, middle, end, destinations);
    std::vector<uint16_t> merged;
    size_t left = begin, right = middle;
    while (left < middle && right < end) {
        const bool take_left =
            compare_for_jump(destinations[order[left]], order[left], destinations[order[right]], order[right]) <= 0;
        merged.push_back(order[take_left ? left++ : right++]);
    }
    merged.insert(merged.end(), order.begin() + left, order.begin() + middle);
    merged.insert(merged.end(), order.begin() + right, order.begin() + end);
    std::copy(merged.begin(), merged.end(), order.begin() + begin);
}

class JumpRing final : public HashRing {
public:
    explicit JumpRing(const std::vector<Destination>& destinations) {
        for (size_t d = 0; d < destinations.size(); ++d) buckets_.push_back(static_cast<uint16_t>(d));
        merge_sort_for_jump(buckets_, 0, buckets_.size(), destinations);
    }

    size_t lookup(std::string_view metric, size_t replication, bool /*diverse: carbon-c-relay has none*/,
                  uint16_t* out) const override {
        const size_t count = std::min({replication, kMaxReplication, buckets_.size()});
        // carbon-c-relay removes each chosen bucket by moving the last one into its slot. Rather
        // than copy the bucket list, remember the moved slots (at most count - 1 of them).
        uint32_t moved_slot[kMaxReplication];
        uint16_t moved_value[kMaxReplication];
        size_t moved = 0;
        const auto at = [&](uint32_t slot) {
            for (size_t k = 0; k < moved; ++k)
                if (moved_slot[k] == slot) return moved_value[k];
            return buckets_[slot];
        };
        uint64_t key = fnv1a_64_signed_chars(metric);
        auto remaining = static_cast<uint32_t>(buckets_.size());
        for (size_t written = 0; written < count; ++written) {
            const uint32_t slot = jump_bucket(key, remaining);
            out[written] = at(slot);
            key = next_replica_key(key);
            const uint16_t last = at(--remaining);
            size_t k = 0;
            while (k < moved && moved_slot[k] != slot) ++k;
            if (k == moved) ++moved;
            moved_slot[k] = slot, moved_value[k] = last;
        }
        return count;
    }

    size_t size() const override { return buckets_.size(); }

    std::vector<Entry> entries() const override {
        std::vector<Entry> result;
        for (size_t b = 0; b < buckets_.size(); ++b) result.push_back({static_cast<uint32_t>(b), buckets_[b]});
        return result;
    }

private:
    std::vector<uint16_t> buckets_;  // bucket number -> destination index
};

}  // namespace

std::unique_ptr<HashRing> HashRing::build(HashType type, const std::vector<Destination>& destinations,
                                          std::string& error, HashCompat compat) {
    if (destinations.empty()) {
        error = "no destinations to hash over";
        return nullptr;
    }
    if (destinations.size() > kMaxRouteDestinations) {
        error = "too many destinations (" + std::to_string(destinations.size()) + "; at most " +
            std::to_string(kMaxRouteDestinations) + ")";
        return nullptr;
    }
    // carbon keys its ring on (server, instance) and refuses a second destination with the same
    // pair. A jump ring has no such key, nor has carbon-c-relay's ring (it keeps colliding
    // positions), but listing one server twice (same host and port) would only send replicas
    // to the same place.
    const bool jump = type == HashType::jump_fnv1a_ch || compat == HashCompat::carbon_c_relay;
    std::map<std::tuple<std::string, uint16_t, std::optional<std::string>>, size_t> first_with_key;
    for (size_t d = 0; d < destinations.size(); ++d) {
        const Destination& dest = destinations[d];
        auto key = jump ? std::make_tuple(dest.host, dest.port, std::optional<std::string>())
                        : std::make_tuple(dest.host, uint16_t(0), dest.instance);
        auto [it, inserted] = first_with_key.emplace(std::move(key), d);
        if (!inserted) {
            const Destination& other = destinations[it->second];
            error = "destinations '" + other.text + "' and '" + dest.text + "' are the same " +
                (jump ? "server (" + dest.address() + ")"
                      : "ring node (" + python_repr(dest.host) + ", " +
                         (dest.instance ? python_repr(*dest.instance) : "None") + ")") +
                "; give them distinct " + (jump ? "addresses" : "instances");
            return nullptr;
        }
    }
    if (type == HashType::jump_fnv1a_ch) return std::make_unique<JumpRing>(destinations);
    if (compat == HashCompat::carbon_c_relay) return std::make_unique<RelayRing>(type, destinations);
    return std::make_unique<CarbonRing>(type, destinations);
}

}  // namespace polymur::route
