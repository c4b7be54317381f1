// The carbon pickle reader (protocol/pickle) on anything a client can send: the input is split into
// frames as the pickle listener splits its socket data (4-byte big-endian length, then the payload),
// every frame is decoded with one reader (so state from one frame cannot leak into the next), and every
// metric of a good frame is walked to the end.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/pickle.hpp"

using namespace polymur::protocol;

namespace {

PickleReader reader;

// Decodes a payload and folds every element into a checksum.
bool walk(std::string_view payload, uint64_t& sum) {
    PickleError error = reader.decode(payload);
    describe(error);
    sum = static_cast<uint64_t>(error);
    if (error != PickleError::none) return false;
    PickleMetric m;
    size_t elements = 0;
    for (;;) {
        PickleReader::Next next = reader.next(m);
        if (next == PickleReader::Next::end) break;
        // Every element came from at least one opcode byte: a walk longer than the payload is a loop.
        if (++elements > payload.size()) std::abort();
        sum = sum * 31 + static_cast<uint64_t>(next);
        if (next == PickleReader::Next::malformed) continue;
        for (std::string_view field : {m.name, m.timestamp, m.value})
            for (char c : field) sum = sum * 131 + static_cast<unsigned char>(c);
    }
    return true;
}

// The same payload read twice by the reused reader gives the same metrics: nothing of a previous
// frame survives into the next.
void check_frame(std::string_view payload) {
    uint64_t first, second;
    walk(payload, first);
    walk(payload, second);
    if (first != second) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);
    check_frame(input);  // the whole input as one payload
    while (input.size() >= 4) {
        uint32_t length = pickle_frame_length(input.data());
        if (length > kPickleMaxFrame || length > input.size() - 4) break;
        check_frame(input.substr(4, length));
        input.remove_prefix(4 + length);
    }
    looks_like_pickle_frame(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
