// stdin to stdout through protocol/stream_codec, for tests/process/test_stream_codec.py, which holds
// the byte format against independent tools (Python's gzip and zlib, the lz4 command).
//   stream_codec_tool encode gzip|lz4 BATCH [open]  compress, flushing every BATCH bytes; `open`: no end
//   stream_codec_tool decode gzip|lz4 CHUNK         decompress, reading CHUNK bytes at a time
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "protocol/stream_codec.hpp"

using polymur::protocol::Compression;

namespace {

bool write_all(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t n = ::write(1, bytes.data(), bytes.size());
        if (n <= 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
}

std::string read_all() {
    std::string in;
    char buf[65536];
    ssize_t n;
    while ((n = ::read(0, buf, sizeof buf)) > 0) in.append(buf, static_cast<size_t>(n));
    return in;
}

}  // namespace

int main(int argc, char** argv) {
    Compression c;
    if (argc < 4 || !polymur::protocol::parse_compression(argv[2], c)) {
        std::fprintf(stderr, "usage: stream_codec_tool encode|decode gzip|lz4 SIZE [open]\n");
        return 2;
    }
    const size_t size = std::strtoul(argv[3], nullptr, 10);
    if (std::strcmp(argv[1], "encode") == 0) {
        const std::string in = read_all();
        polymur::protocol::StreamEncoder encoder(c);
        for (size_t at = 0; at < in.size(); at += size) {
            if (!encoder.write(std::string_view(in).substr(at, size)) || !encoder.flush()) break;
            if (!write_all(encoder.pending())) return 1;
            encoder.consume(encoder.pending().size());
        }
        if (argc < 5 || std::strcmp(argv[4], "open") != 0) encoder.finish();
        if (!encoder.error().empty()) {
            std::fprintf(stderr, "%s\n", encoder.error().c_str());
            return 1;
        }
        return write_all(encoder.pending()) ? 0 : 1;
    }
    polymur::protocol::StreamDecoder decoder(c);
    std::string held, out(65536, '\0');
    std::string chunk(size, '\0');
    ssize_t n;
    while ((n = ::read(0, chunk.data(), chunk.size())) > 0) {
        held.append(chunk.data(), static_cast<size_t>(n));
        for (;;) {
            size_t consumed = 0, produced = 0;
            if (!decoder.decode(held, out.data(), out.size(), consumed, produced)) {
                std::fprintf(stderr, "%s\n", decoder.error().c_str());
                return 1;
            }
            if (!write_all({out.data(), produced})) return 1;
            held.erase(0, consumed);
            if (produced < out.size() && (consumed == 0 || held.empty())) break;
        }
    }
    if (!decoder.at_boundary() || !held.empty()) {
        std::fprintf(stderr, "stream cut short\n");
        return 1;
    }
    return 0;
}
