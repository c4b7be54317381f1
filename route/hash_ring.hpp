// Consistent-hash rings that place metrics exactly where Graphite carbon (carbon_ch, fnv1a_ch)
// and carbon-c-relay (jump_fnv1a_ch) place them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "route/destination.hpp"

namespace polymur::route {

enum class HashType { carbon_ch, fnv1a_ch, jump_fnv1a_ch };

bool parse_hash_type(std::string_view text, HashType& out);
const char* hash_type_name(HashType type);

// Whose placement carbon_ch and fnv1a_ch follow: Graphite carbon's (what graphite-web computes
// for CARBONLINK_HOSTS), or carbon-c-relay 3.7.3's, which keys fnv1a_ch on host:port when a
// destination has no instance and keeps colliding ring positions instead of bumping them.
// jump_fnv1a_ch is carbon-c-relay's own under both.
enum class HashCompat { graphite, carbon_c_relay };

bool parse_hash_compat(std::string_view text, HashCompat& out);
const char* hash_compat_name(HashCompat compat);

// Limits that let lookup work in fixed stack buffers.
// Destinations one hash ring or routing table can address (not shm::kDestinationSlots, the relay's
// output processes).
inline constexpr size_t kMaxRouteDestinations = 4096;
inline constexpr size_t kMaxReplication = 64;  // lookup clamps `replication` to this

// Python 3's repr() of a str given as UTF-8 (undecodable bytes treated like surrogateescape).
// carbon_ch hashes the repr of the (server, instance) tuple, so this must be byte-exact.
std::string python_repr(std::string_view utf8);

// The hash functions the rings are built from, exposed for tests.
void md5_digest(const void* data, size_t size, uint8_t digest[16]);
uint32_t carbon_ch_position(std::string_view key);  // first two MD5 bytes, big-endian
uint32_t fnv1a_ch_position(std::string_view key);   // 32-bit FNV-1a folded to 16 bits
// The same, with bytes read as signed chars as carbon-c-relay does on x86-64.
uint32_t fnv1a_ch_position_signed_chars(std::string_view key);

class HashRing {
public:
    virtual ~HashRing() = default;

    // Builds a ring over `destinations` (indices into this vector are what lookup returns).
    // Refuses two destinations that are the same ring node, naming both in `error`.
    static std::unique_ptr<HashRing> build(HashType type, const std::vector<Destination>& destinations,
                                           std::string& error, HashCompat compat = HashCompat::graphite);

    // Writes up to `replication` destination indices for `metric` into `out` (capacity >= replication),
    // in the order carbon's ConsistentHashingRouter.getDestinations yields them (with `diverse` =
    // DIVERSE_REPLICAS). Returns how many were written. Never allocates.
    // Like carbon, a one-node ring with replication >= 2 and !diverse yields that node twice.
    // Under HashCompat::carbon_c_relay the order is carbon-c-relay's and `diverse` is not used.
    virtual size_t lookup(std::string_view metric, size_t replication, bool diverse, uint16_t* out) const = 0;

    virtual size_t size() const = 0;  // number of destinations

    // The ring as carbon's ConsistentHashRing.ring holds it: (position, destination index) sorted
    // by position. jump_fnv1a_ch has no ring; it lists (bucket number, destination index).
    struct Entry {
        uint32_t position;  // may exceed 65535 after collision bumps
        uint16_t destination;
    };
    virtual std::vector<Entry> entries() const = 0;
};

}  // namespace polymur::route
