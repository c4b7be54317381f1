// What fuzz_gzip_stream and fuzz_lz4_stream share: the input is a compressed stream as a client sends
// it. The first byte chooses how it is cut into reads and how large the output buffer is, so chunk and
// buffer boundaries fall everywhere; every call must stay within its buffer and the input given, and
// the same stream decoded in one piece must give the same bytes and the same verdict.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/stream_codec.hpp"

namespace polymur::fuzz {

struct Decoded {
    bool ok = true;
    uint64_t sum = 0;
    size_t bytes = 0;
};

inline Decoded decode_stream(protocol::Compression c, std::string_view in, size_t chunk, size_t cap) {
    protocol::StreamDecoder decoder(c, 256 << 10);
    std::string out(cap, '\0');
    std::string held;
    Decoded result;
    for (size_t at = 0; at < in.size() && result.ok; at += chunk) {
        held.append(in.substr(at, chunk));
        for (;;) {
            size_t consumed = 0, produced = 0;
            if (!decoder.decode(held, out.data(), cap, consumed, produced)) {
                if (decoder.error().empty()) std::abort();  // a refusal always says why
                result.ok = false;
                break;
            }
            if (consumed > held.size() || produced > cap) std::abort();
            for (size_t i = 0; i < produced; ++i) result.sum = result.sum * 131 + static_cast<unsigned char>(out[i]);
            result.bytes += produced;
            held.erase(0, consumed);
            if (result.bytes > (64u << 20)) return result;  // a bomb: bounded by the buffer, not worth more time
            if (produced < cap && (consumed == 0 || held.empty())) break;
        }
    }
    return result;
}

inline int fuzz_stream_decoder(protocol::Compression c, const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t chunk = 1 + (data[0] & 0x0f) * 37;
    const size_t cap = 1 + (data[0] >> 4) * 511;
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    Decoded pieces = decode_stream(c, in, chunk, cap);
    Decoded whole = decode_stream(c, in, in.size() ? in.size() : 1, 1 << 16);
    if (pieces.bytes <= (64u << 20) && whole.bytes <= (64u << 20) &&
        (pieces.ok != whole.ok || (pieces.ok && (pieces.sum != whole.sum || pieces.bytes != whole.bytes))))
        std::abort();
    return 0;
}

}  // namespace polymur::fuzz
