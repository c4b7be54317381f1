// polymur-codec-bench: the output side's compressors alone (protocol/stream_codec's StreamEncoder), ns
// per line and the compression ratio, for profiling gzip:// and lz4:// without sockets or processes.
// Lines as bench/output_transports.py queues them, compressed the way an output does it: one write and
// one flush per batch of --batch bytes (256 KiB, the stream transport's chunk), the encoder's output
// consumed after each batch. Also decodes what it encoded (StreamDecoder) and checks it is the input.
//
// usage: polymur-codec-bench [--lines N] [--batch BYTES] [--rounds N]
// Prints one line per codec and level: codec=lz4 level=1 ns_per_line=... MB_per_s=... ratio=...
// Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), the best of the rounds: on a shared
// machine the wall clock counts other processes' turns.
#include <lz4frame.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/stream_codec.hpp"

namespace {

int64_t cpu_ns() {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}
using polymur::protocol::Compression;

struct Result {
    double ns_per_line = 0;
    size_t wire = 0;
};

// Encodes `text` in batches, best of `rounds`; checks the round trip once.
Result encode(Compression compression, int level, const std::string& text, size_t lines, size_t batch, int rounds) {
    polymur::protocol::StreamEncoder encoder(compression, level);
    std::string wire;
    Result best;
    for (int round = 0; round < rounds; ++round) {
        encoder.restart();
        size_t produced = 0;
        const int64_t start = cpu_ns();
        for (size_t at = 0; at < text.size(); at += batch) {
            std::string_view part(text.data() + at, std::min(batch, text.size() - at));
            if (!encoder.write(part) || !encoder.flush()) {
                std::fprintf(stderr, "polymur-codec-bench: %s\n", encoder.error().c_str());
                std::exit(1);
            }
            produced += encoder.pending().size();
            if (round == 0) wire.append(encoder.pending());
            encoder.consume(encoder.pending().size());
        }
        const double ns = static_cast<double>(cpu_ns() - start) / static_cast<double>(lines);
        if (round == 0 || ns < best.ns_per_line) best.ns_per_line = ns;
        best.wire = produced;
    }
    polymur::protocol::StreamDecoder decoder(compression);
    std::string back(text.size() + 1, '\0');
    size_t consumed = 0, out = 0;
    if (!decoder.decode(wire, back.data(), back.size(), consumed, out) || out != text.size() ||
        std::memcmp(back.data(), text.data(), out) != 0) {
        std::fprintf(stderr, "polymur-codec-bench: %s level %d: the round trip differs\n",
                     polymur::protocol::compression_name(compression), level);
        std::exit(1);
    }
    return best;
}

// The frames polymur made before (linked 64 KiB blocks, a content checksum, liblz4 buffering each
// block): LZ4F directly, same batches, for the comparison. ns per line, best of `rounds`.
double encode_linked_checksummed(const std::string& text, size_t lines, size_t batch, int rounds, size_t& wire) {
    LZ4F_preferences_t prefs {};
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockLinked;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs.compressionLevel = 1;
    LZ4F_cctx* cctx = nullptr;
    if (LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION))) std::exit(1);
    std::vector<char> out(LZ4F_compressBound(batch, &prefs) + LZ4F_HEADER_SIZE_MAX);
    double best = 0;
    for (int round = 0; round < rounds; ++round) {
        wire = LZ4F_compressBegin(cctx, out.data(), out.size(), &prefs);
        const int64_t start = cpu_ns();
        for (size_t at = 0; at < text.size(); at += batch) {
            const size_t n = std::min(batch, text.size() - at);
            size_t made = LZ4F_compressUpdate(cctx, out.data(), out.size(), text.data() + at, n, nullptr);
            made += LZ4F_flush(cctx, out.data() + made, out.size() - made, nullptr);
            if (LZ4F_isError(made)) std::exit(1);
            wire += made;
        }
        const double ns = static_cast<double>(cpu_ns() - start) / static_cast<double>(lines);
        if (round == 0 || ns < best) best = ns;
    }
    LZ4F_freeCompressionContext(cctx);
    return best;
}

}  // namespace

int main(int argc, char** argv) {
    size_t lines = 1000000, batch = 256 * 1024;
    int rounds = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        std::string opt = argv[i];
        if (opt == "--lines") lines = std::strtoull(argv[i + 1], nullptr, 10);
        else if (opt == "--batch") batch = std::strtoull(argv[i + 1], nullptr, 10);
        else if (opt == "--rounds") rounds = std::atoi(argv[i + 1]);
        else {
            std::fprintf(stderr, "usage: polymur-codec-bench [--lines N] [--batch BYTES] [--rounds N]\n");
            return 2;
        }
    }
    if (lines == 0 || batch == 0 || rounds < 1) return 2;
    std::string text;
    text.reserve(lines * 56);
    char line[128];
    for (size_t i = 0; i < lines; ++i) {
        int n = std::snprintf(line, sizeof line, "bench.output.host%03zu.metric%04zu %zu 1700000000\n", i % 1000,
                              i % 997, i);
        text.append(line, static_cast<size_t>(n));
    }
    struct Case {
        Compression compression;
        int level;
    };
    const Case cases[] = {{Compression::none, 0},  {Compression::lz4, 1},  {Compression::lz4, -1},
                          {Compression::lz4, -3},  {Compression::lz4, -7}, {Compression::lz4, -15},
                          {Compression::lz4, -63}, {Compression::gzip, 1}};
    for (const Case& c : cases) {
        Result r = encode(c.compression, c.level, text, lines, batch, rounds);
        std::printf("codec=%s level=%d ns_per_line=%.1f MB_per_s=%.0f ratio=%.2f\n",
                    polymur::protocol::compression_name(c.compression), c.level, r.ns_per_line,
                    static_cast<double>(text.size()) / static_cast<double>(lines) / r.ns_per_line * 1e3,
                    static_cast<double>(text.size()) / static_cast<double>(r.wire));
    }
    size_t wire = 0;
    const double ns = encode_linked_checksummed(text, lines, batch, rounds, wire);
    std::printf("codec=lz4-linked-checksummed level=1 ns_per_line=%.1f MB_per_s=%.0f ratio=%.2f\n", ns,
                static_cast<double>(text.size()) / static_cast<double>(lines) / ns * 1e3,
                static_cast<double>(text.size()) / static_cast<double>(wire));
    return 0;
}
