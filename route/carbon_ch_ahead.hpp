// carbon_ch ring positions of a batch of names at once, ahead of the lookups that need them.
//
// carbon_ch places a metric by the first two bytes of the MD5 of its name. One MD5 is a chain of 64
// dependent steps, so hashing names one at a time leaves most of a core idle; here the names of a batch
// are hashed side by side, one per lane of the vector registers (16 lanes: one AVX-512 register, two
// AVX2 or four SSE2 registers, the widest the CPU has, chosen when the program loads). The result is
// bit for bit carbon_ch_position's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace polymur::route {

inline constexpr size_t kAheadBatch = 16;  // names hashed side by side

// positions[i] = carbon_ch_position(names[i]) for every i < count (any count, any lengths: names of 56
// bytes or more, which need a second MD5 block, are hashed one at a time).
void carbon_ch_positions(const std::string_view* names, size_t count, uint32_t* positions);

// While one lives, carbon_ch_position on this thread answers for each of `names` (that name's bytes at
// that address) from a position computed in the constructor; any other key is hashed as before. The
// caller keeps those bytes unchanged until it is destroyed, and destroys it on the thread that made it.
// Empty names and names of 56 bytes or more are not computed ahead. Scopes nest (the innermost answers).
// The registers the lanes run in. The widest the CPU has is used; tests and the bench may pick a narrower
// one (false: this CPU or build has no such registers; nothing changes).
enum class VectorWidth { baseline, avx2, avx512 };  // baseline: SSE2 on x86-64, the compiler's choice elsewhere
bool use_vector_width(VectorWidth width);

class CarbonChAhead {
public:
    CarbonChAhead(const std::string_view* names, size_t count);  // count <= kAheadBatch
    ~CarbonChAhead();
    CarbonChAhead(const CarbonChAhead&) = delete;
    CarbonChAhead& operator=(const CarbonChAhead&) = delete;

    // For carbon_ch_position: the position computed ahead for `key`, if the live scope has it.
    static bool find(std::string_view key, uint32_t& position);

private:
    const char* data_[kAheadBatch];
    size_t size_[kAheadBatch];
    uint32_t position_[kAheadBatch];
    size_t count_ = 0;
    size_t next_ = 0;  // names are usually looked up in the order given: the first place to look
    CarbonChAhead* outer_;
};

}  // namespace polymur::route
