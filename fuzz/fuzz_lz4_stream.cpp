// The lz4 stream decoder (protocol/stream_codec) on anything a client can send to a listener.
#include "stream_decoder_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    return polymur::fuzz::fuzz_stream_decoder(polymur::protocol::Compression::lz4, data, size);
}
