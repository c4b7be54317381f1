// The gzip and LZ4 stream codecs (protocol/stream_codec): round trips at every chunk boundary, flushes
// that make each batch decodable at once, concatenated members and frames, corrupt input, and bounds.
// Their byte format against independent tools (Python's gzip, the lz4 command) is checked in
// tests/process/test_stream_codec.py.
#include <gtest/gtest.h>
#include <lz4frame.h>
#include <zlib.h>

#include <random>
#include <string>

#include "protocol/stream_codec.hpp"

namespace polymur::protocol {
namespace {

std::string lines(size_t count, uint32_t seed = 1) {
    std::mt19937 random(seed);
    std::string out;
    for (size_t i = 0; i < count; ++i)
        out += "servers.web" + std::to_string(random() % 50) + ".cpu." + std::to_string(i) + " " +
            std::to_string(random() % 100000) + " 1700000000\n";
    return out;
}

std::string encode(Compression c, const std::string& text, size_t batch, bool finish = true) {
    StreamEncoder encoder(c);
    std::string out;
    for (size_t at = 0; at < text.size(); at += batch) {
        EXPECT_TRUE(encoder.write(std::string_view(text).substr(at, batch)));
        EXPECT_TRUE(encoder.flush());
        out += encoder.pending();
        encoder.consume(encoder.pending().size());
    }
    if (finish) {
        EXPECT_TRUE(encoder.finish());
    }
    out += encoder.pending();
    return out;
}

// Feeds `in` in pieces of `chunk` bytes and decodes into an output buffer of `cap` bytes; the
// decoder's unconsumed input is kept and given again, as the listener does.
bool decode(Compression c, const std::string& in, size_t chunk, size_t cap, std::string& out,
            std::string* error = nullptr, size_t max_block = kLz4MaxBlock) {
    StreamDecoder decoder(c, max_block);
    std::string buffer(cap, '\0');
    std::string held;
    for (size_t at = 0; at < in.size(); at += chunk) {
        held += in.substr(at, chunk);
        for (;;) {
            size_t consumed = 0, produced = 0;
            if (!decoder.decode(held, buffer.data(), cap, consumed, produced)) {
                if (error) *error = decoder.error();
                return false;
            }
            out.append(buffer.data(), produced);
            held.erase(0, consumed);
            if (produced < cap && (consumed == 0 || held.empty())) break;
        }
    }
    if (!decoder.at_boundary()) {  // what a listener says at the end of the connection
        if (error) *error = "stream cut short";
        return false;
    }
    return true;
}

class StreamCodecTest : public ::testing::TestWithParam<Compression> {};

TEST_P(StreamCodecTest, RoundTripAtEveryChunkBoundary) {
    const std::string text = lines(3000);
    for (size_t batch : {size_t(1) << 20, size_t(4096), size_t(97)}) {
        const std::string encoded = encode(GetParam(), text, batch);
        for (size_t chunk : {size_t(1), size_t(3), size_t(1000), encoded.size()}) {
            for (size_t cap : {size_t(1), size_t(17), size_t(65536)}) {
                if (chunk == 1 && cap == 1 && batch != 4096) continue;  // slow and covered by the others
                std::string out;
                ASSERT_TRUE(decode(GetParam(), encoded, chunk, cap, out)) << batch << "/" << chunk << "/" << cap;
                ASSERT_EQ(out, text) << batch << "/" << chunk << "/" << cap;
            }
        }
    }
}

// The decoder may keep decoded bytes that did not fit the caller's buffer after it consumed all of its
// input: asking again with no new input must give them (fuzz_gzip_stream found them stuck until more
// input came, and lost when none did).
TEST_P(StreamCodecTest, HeldOutputComesOutWithoutMoreInput) {
    const std::string text = lines(2000);
    for (size_t batch : {size_t(1) << 20, size_t(4096)}) {
        const std::string encoded = encode(GetParam(), text, batch, /*finish=*/false);
        for (size_t chunk : {size_t(38), encoded.size()}) {
            StreamDecoder decoder(GetParam());
            std::string out, held, buf(512, '\0');
            size_t consumed = 0, produced = 0;
            for (size_t at = 0; at < encoded.size(); at += chunk) {
                held += encoded.substr(at, chunk);
                do {  // as a listener does: decode until the buffer is not filled or the input is used up
                    ASSERT_TRUE(decoder.decode(held, buf.data(), buf.size(), consumed, produced));
                    held.erase(0, consumed);
                    out.append(buf.data(), produced);
                } while (produced == buf.size() && !held.empty());
            }
            do {  // every input byte is in: only the decoder's own buffer is left
                ASSERT_TRUE(decoder.decode(held, buf.data(), buf.size(), consumed, produced));
                held.erase(0, consumed);
                out.append(buf.data(), produced);
            } while (produced > 0);
            EXPECT_EQ(out, text) << batch << "/" << chunk;
        }
    }
}

// A relay flushes at every batch: the peer must be able to decode each batch whole the moment it
// has its bytes, without the stream's end.
TEST_P(StreamCodecTest, EachFlushedBatchDecodesAtOnce) {
    StreamEncoder encoder(GetParam());
    StreamDecoder decoder(GetParam());
    std::string buffer(1 << 16, '\0');
    for (int batch = 0; batch < 20; ++batch) {
        const std::string text = lines(1 + batch * 37, batch);
        ASSERT_TRUE(encoder.write(text));
        ASSERT_TRUE(encoder.flush());
        std::string wire(encoder.pending());
        encoder.consume(wire.size());
        std::string out;
        size_t at = 0;
        for (;;) {
            size_t consumed = 0, produced = 0;
            ASSERT_TRUE(
                decoder.decode(std::string_view(wire).substr(at), buffer.data(), buffer.size(), consumed, produced));
            out.append(buffer.data(), produced);
            at += consumed;
            if (consumed == 0 && produced == 0) break;
        }
        EXPECT_EQ(at, wire.size());
        EXPECT_EQ(out, text) << "batch " << batch;
    }
}

TEST_P(StreamCodecTest, ConcatenatedStreamsDecodeAsOne) {
    const std::string a = lines(100, 1), b = lines(200, 2);
    const std::string wire = encode(GetParam(), a, 1000) + encode(GetParam(), b, 50000);
    std::string out;
    ASSERT_TRUE(decode(GetParam(), wire, 7, 100, out));
    EXPECT_EQ(out, a + b);
}

TEST_P(StreamCodecTest, RestartBeginsAFreshStream) {
    StreamEncoder encoder(GetParam());
    ASSERT_TRUE(encoder.write(lines(10)));
    ASSERT_TRUE(encoder.flush());
    encoder.restart();  // the connection was lost: what was pending is gone
    EXPECT_TRUE(encoder.pending().empty());
    const std::string text = lines(20, 5);
    ASSERT_TRUE(encoder.write(text));
    ASSERT_TRUE(encoder.finish());
    std::string out;
    ASSERT_TRUE(decode(GetParam(), std::string(encoder.pending()), 11, 4096, out));
    EXPECT_EQ(out, text);
}

// An LZ4 frame as the lz4 tool writes it: linked 64 KiB blocks and a content checksum (what polymur's
// encoder leaves out, senders such as the lz4 tool put in, and the decoder must check).
std::string lz4_frame_with_checksum(const std::string& text) {
    LZ4F_preferences_t prefs {};
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    std::string wire(LZ4F_compressFrameBound(text.size(), &prefs), '\0');
    size_t n = LZ4F_compressFrame(wire.data(), wire.size(), text.data(), text.size(), &prefs);
    EXPECT_FALSE(LZ4F_isError(n));
    wire.resize(LZ4F_isError(n) ? 0 : n);
    return wire;
}

TEST_P(StreamCodecTest, CorruptOrForeignInputFailsCleanly) {
    // polymur's LZ4 frames carry no checksum (TCP and TLS guard the bytes): a damaged byte is caught
    // only where it breaks the blocks' structure. The checksum of a frame that has one is checked.
    const std::string text = lines(500);
    const std::string good =
        GetParam() == Compression::lz4 ? lz4_frame_with_checksum(text) : encode(GetParam(), text, 4096);
    std::string round_trip;
    ASSERT_TRUE(decode(GetParam(), good, 100, 1000, round_trip));
    ASSERT_EQ(round_trip, text);
    std::mt19937 random(7);
    int failures = 0;
    for (int round = 0; round < 300; ++round) {
        std::string bad = good;
        size_t at = 12 + random() % (bad.size() - 12);  // past the header: the data itself damaged
        bad[at] = static_cast<char>(bad[at] ^ (1 + random() % 255));
        std::string out, error;
        if (!decode(GetParam(), bad, 1 + random() % 300, 1 + random() % 5000, out, &error)) {
            ++failures;
            EXPECT_FALSE(error.empty());
        }
    }
    EXPECT_GT(failures, 250);  // checksums (gzip's CRC-32, LZ4's content checksum) catch the rest
    for (std::string foreign : {std::string("plain.line 1 1700000000\n"), std::string(64, '\0')}) {
        std::string out, error;
        EXPECT_FALSE(decode(GetParam(), foreign, 5, 100, out, &error));
        EXPECT_NE(error.find(GetParam() == Compression::gzip ? "gzip" : "lz4"), std::string::npos) << error;
    }
}

// A small stream that expands enormously is decoded into the caller's buffer piece by piece: memory
// stays bounded by that buffer, whatever the ratio.
TEST_P(StreamCodecTest, DecompressionBombComesOutInBoundedPieces) {
    const std::string zeros(64 << 20, '0');
    const std::string wire = encode(GetParam(), zeros, zeros.size());
    ASSERT_LT(wire.size(), zeros.size() / 200);
    StreamDecoder decoder(GetParam());
    std::string buffer(65536, '\0');
    size_t total = 0, at = 0, calls = 0;
    for (;;) {
        size_t consumed = 0, produced = 0;
        ASSERT_TRUE(
            decoder.decode(std::string_view(wire).substr(at), buffer.data(), buffer.size(), consumed, produced));
        ASSERT_LE(produced, buffer.size());
        total += produced;
        at += consumed;
        ++calls;
        if (consumed == 0 && produced == 0) break;
    }
    EXPECT_EQ(total, zeros.size());
    EXPECT_GE(calls, zeros.size() / buffer.size());
}

// The encoder's buffer grows to the largest batch and is then reused: no allocation per batch.
TEST_P(StreamCodecTest, EncoderBufferIsReused) {
    StreamEncoder encoder(GetParam());
    const std::string text = lines(2000);
    const char* first = nullptr;
    for (int batch = 0; batch < 50; ++batch) {
        ASSERT_TRUE(encoder.write(text));
        ASSERT_TRUE(encoder.flush());
        if (batch == 1) first = encoder.pending().data();
        if (batch > 1) {
            EXPECT_EQ(encoder.pending().data(), first);
        }
        encoder.consume(encoder.pending().size());
    }
}

INSTANTIATE_TEST_SUITE_P(Codecs, StreamCodecTest, ::testing::Values(Compression::gzip, Compression::lz4),
                         [](const auto& info) { return std::string(compression_name(info.param)); });

TEST(StreamCodec, Lz4FramesWithBlocksOverTheLimitAreRefused) {
    LZ4F_preferences_t prefs {};
    prefs.frameInfo.blockSizeID = LZ4F_max4MB;
    const std::string text = lines(100);
    // The streaming API keeps the block size asked for (LZ4F_compressFrame shrinks it to the content).
    LZ4F_cctx* cctx = nullptr;
    ASSERT_FALSE(LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)));
    std::string wire(LZ4F_compressBound(text.size(), &prefs) + LZ4F_HEADER_SIZE_MAX, '\0');
    size_t n = LZ4F_compressBegin(cctx, wire.data(), wire.size(), &prefs);
    n += LZ4F_compressUpdate(cctx, wire.data() + n, wire.size() - n, text.data(), text.size(), nullptr);
    n += LZ4F_compressEnd(cctx, wire.data() + n, wire.size() - n, nullptr);
    LZ4F_freeCompressionContext(cctx);
    wire.resize(n);
    std::string out, error;
    EXPECT_FALSE(decode(Compression::lz4, wire, 3, 100, out, &error, 64 << 10));
    EXPECT_NE(error.find("4096 KiB are over the limit of 64 KiB"), std::string::npos) << error;
    out.clear();
    EXPECT_TRUE(decode(Compression::lz4, wire, 3, 100, out));  // 4 MiB is the default limit
    EXPECT_EQ(out, text);
}

// The frames polymur sends: 64 KiB independent blocks, no block or content checksum (FLG and BD
// bytes of the frame header), an uncompressed block size of at most 64 KiB each.
TEST(StreamCodec, Lz4EncoderWritesIndependentBlocksWithoutChecksums) {
    const std::string text = lines(20000);
    ASSERT_GT(text.size(), 4u << 16);
    const std::string wire = encode(Compression::lz4, text, 300000);
    ASSERT_GE(wire.size(), 7u);
    const auto flg = static_cast<unsigned char>(wire[4]), bd = static_cast<unsigned char>(wire[5]);
    EXPECT_EQ(flg >> 6, 1);       // version 01
    EXPECT_TRUE(flg & 0x20);      // block independence
    EXPECT_FALSE(flg & 0x10);     // no block checksum
    EXPECT_FALSE(flg & 0x08);     // no content size
    EXPECT_FALSE(flg & 0x04);     // no content checksum
    EXPECT_EQ((bd >> 4) & 7, 4);  // 64 KiB blocks
    // The stream ends with the end mark alone (four zero bytes), no checksum after it.
    EXPECT_EQ(wire.substr(wire.size() - 4), std::string(4, '\0'));
    std::string out;
    EXPECT_TRUE(decode(Compression::lz4, wire, 4096, 1 << 16, out));
    EXPECT_EQ(out, text);
}

TEST(StreamCodec, SniffsTheMagic) {
    EXPECT_EQ(sniff_compression("\x1f\x8b\x08"), Sniffed::gzip);
    EXPECT_EQ(sniff_compression(std::string_view("\x04\x22\x4d\x18\x64", 5)), Sniffed::lz4);
    EXPECT_EQ(sniff_compression("\x1f"), Sniffed::need_more);
    EXPECT_EQ(sniff_compression(std::string_view("\x04\x22\x4d", 3)), Sniffed::need_more);
    EXPECT_EQ(sniff_compression(""), Sniffed::need_more);
    EXPECT_EQ(sniff_compression("a.b 1 2\n"), Sniffed::plain);
    EXPECT_EQ(sniff_compression("\x1f"
                                "a"),
              Sniffed::plain);
    EXPECT_EQ(sniff_compression(std::string_view("\x04\x22\x00", 3)), Sniffed::plain);
    Compression c;
    EXPECT_TRUE(parse_compression("lz4", c));
    EXPECT_EQ(c, Compression::lz4);
    EXPECT_FALSE(parse_compression("snappy", c));
}

}  // namespace
}  // namespace polymur::protocol
