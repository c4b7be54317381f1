#include "protocol/stream_codec.hpp"

#include <lz4frame.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

namespace polymur::protocol {
namespace {

constexpr unsigned char kGzipMagic[] = {0x1f, 0x8b};
constexpr unsigned char kLz4Magic[] = {0x04, 0x22, 0x4d, 0x18};  // 0x184D2204, little-endian
constexpr size_t kEncodeChunk = 64 * 1024;                       // input per compressor call: bounds each reserve

bool starts_with(std::string_view bytes, const unsigned char* magic, size_t size) {
    return bytes.size() >= size && std::memcmp(bytes.data(), magic, size) == 0;
}

// The first `bytes.size()` bytes of `magic` match.
bool prefix_of(std::string_view bytes, const unsigned char* magic, size_t size) {
    return bytes.size() < size && std::memcmp(bytes.data(), magic, bytes.size()) == 0;
}

std::string zlib_message(const z_stream& z, int code) {
    if (z.msg) return z.msg;
    return "zlib error " + std::to_string(code);
}

}  // namespace

const char* compression_name(Compression compression) {
    switch (compression) {
        case Compression::none: return "none";
        case Compression::gzip: return "gzip";
        case Compression::lz4: return "lz4";
    }
    return "unknown";
}

bool parse_compression(std::string_view text, Compression& out) {
    for (Compression c : {Compression::none, Compression::gzip, Compression::lz4}) {
        if (text == compression_name(c)) {
            out = c;
            return true;
        }
    }
    return false;
}

Sniffed sniff_compression(std::string_view first) {
    if (first.empty()) return Sniffed::need_more;
    if (starts_with(first, kGzipMagic, sizeof kGzipMagic)) return Sniffed::gzip;
    if (starts_with(first, kLz4Magic, sizeof kLz4Magic)) return Sniffed::lz4;
    if (prefix_of(first, kGzipMagic, sizeof kGzipMagic) || prefix_of(first, kLz4Magic, sizeof kLz4Magic))
        return Sniffed::need_more;
    return Sniffed::plain;
}

// ---------------------------------------------------------------------------------------------
// Decoder

struct StreamDecoder::State {
    z_stream z {};
    bool z_ready = false;
    LZ4F_dctx* lz4 = nullptr;
    ~State() {
        if (z_ready) inflateEnd(&z);
        if (lz4) LZ4F_freeDecompressionContext(lz4);
    }
};

StreamDecoder::StreamDecoder(Compression compression, size_t max_lz4_block)
        : compression_(compression), max_lz4_block_(max_lz4_block), state_(std::make_unique<State>()) {
    if (compression_ == Compression::gzip) {
        // 16 + 15: a gzip wrapper (not zlib's, not raw deflate), a window of up to 32 KiB.
        if (inflateInit2(&state_->z, 16 + MAX_WBITS) != Z_OK) fail("cannot initialise zlib");
        else state_->z_ready = true;
    } else if (compression_ == Compression::lz4) {
        if (LZ4F_isError(LZ4F_createDecompressionContext(&state_->lz4, LZ4F_VERSION))) fail("cannot initialise lz4");
    }
}

StreamDecoder::~StreamDecoder() = default;

bool StreamDecoder::fail(std::string why) {
    failed_ = true;
    if (error_.empty()) error_ = std::move(why);
    return false;
}

bool StreamDecoder::decode(std::string_view in, char* out, size_t cap, size_t& consumed, size_t& produced) {
    consumed = produced = 0;
    if (failed_) return false;
    switch (compression_) {
        case Compression::none: {
            size_t n = std::min(in.size(), cap);
            std::memcpy(out, in.data(), n);
            consumed = produced = n;
            return true;
        }
        case Compression::gzip: return decode_gzip(in, out, cap, consumed, produced);
        case Compression::lz4: return decode_lz4(in, out, cap, consumed, produced);
    }
    return fail("unknown compression");
}

bool StreamDecoder::decode_gzip(std::string_view in, char* out, size_t cap, size_t& consumed, size_t& produced) {
    z_stream& z = state_->z;
    // Runs while there is room, not only while there is input: inflate may hold decoded bytes that did not
    // fit the last call's buffer, and they must come out even if no more input ever arrives.
    while (produced < cap) {
        if (at_boundary_ && consumed == in.size()) break;  // the next member has not started
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + consumed));
        z.avail_in = static_cast<uInt>(std::min<size_t>(in.size() - consumed, 1u << 30));
        z.next_out = reinterpret_cast<Bytef*>(out + produced);
        z.avail_out = static_cast<uInt>(std::min<size_t>(cap - produced, 1u << 30));
        const uInt in_before = z.avail_in, out_before = z.avail_out;
        if (at_boundary_ && !starts_with(in.substr(consumed), kGzipMagic, 1))
            return fail("not a gzip member (expected 1f 8b)");
        at_boundary_ = false;
        int code = inflate(&z, Z_SYNC_FLUSH);
        consumed += in_before - z.avail_in;
        produced += out_before - z.avail_out;
        if (code == Z_STREAM_END) {
            // Another member may follow, as gzip concatenates them.
            inflateReset(&z);
            at_boundary_ = true;
            continue;
        }
        if (code == Z_BUF_ERROR) break;  // needs more input (or room): not an error
        if (code != Z_OK) return fail("gzip: " + zlib_message(z, code));
        if (in_before == z.avail_in && out_before == z.avail_out) break;
    }
    return true;
}

bool StreamDecoder::decode_lz4(std::string_view in, char* out, size_t cap, size_t& consumed, size_t& produced) {
    // As for gzip: while there is room, so decoded bytes LZ4F holds back come out without more input.
    while (produced < cap) {
        std::string_view rest = in.substr(consumed);
        if (at_boundary_ && rest.empty()) break;  // the next frame has not started
        if (at_boundary_) {
            // A new frame: its header says how large its blocks are, which is what decoding it holds in
            // memory. Skippable frames (0x184D2A5x) have no blocks; liblz4 passes over them.
            if (prefix_of(rest, kLz4Magic, sizeof kLz4Magic) || (starts_with(rest, kLz4Magic, 4) && rest.size() < 6))
                break;
            if (starts_with(rest, kLz4Magic, 4)) {
                const unsigned block_id = (static_cast<unsigned char>(rest[5]) >> 4) & 7;
                const size_t block = block_id >= 4 ? size_t(1) << (8 + 2 * block_id) : 0;
                if (block == 0) return fail("lz4: bad block size in the frame header");
                if (block > max_lz4_block_)
                    return fail("lz4: frame blocks of " + std::to_string(block >> 10) + " KiB are over the limit of " +
                                std::to_string(max_lz4_block_ >> 10) + " KiB");
            } else if (rest.size() >= 4) {
                uint32_t magic = static_cast<unsigned char>(rest[0]) | static_cast<unsigned char>(rest[1]) << 8 |
                    static_cast<unsigned char>(rest[2]) << 16 | uint32_t(static_cast<unsigned char>(rest[3])) << 24;
                if ((magic & 0xfffffff0u) != 0x184d2a50u) return fail("not an lz4 frame (expected 04 22 4d 18)");
            } else {
                break;  // too few bytes to tell
            }
            at_boundary_ = false;
        }
        size_t src = rest.size(), dst = cap - produced;
        size_t hint = LZ4F_decompress(state_->lz4, out + produced, &dst, rest.data(), &src, nullptr);
        if (LZ4F_isError(hint)) return fail(std::string("lz4: ") + LZ4F_getErrorName(hint));
        consumed += src;
        produced += dst;
        if (hint == 0) {
            at_boundary_ = true;  // the frame ended; another may follow
            continue;
        }
        if (src == 0 && dst == 0) break;
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// Encoder

struct StreamEncoder::State {
    z_stream z {};
    bool z_ready = false;
    LZ4F_cctx* lz4 = nullptr;
    LZ4F_preferences_t prefs {};
    ~State() {
        if (z_ready) deflateEnd(&z);
        if (lz4) LZ4F_freeCompressionContext(lz4);
    }
};

StreamEncoder::StreamEncoder(Compression compression, int level)
        : compression_(compression), level_(level), state_(std::make_unique<State>()) {
    if (compression_ == Compression::lz4) {
        if (LZ4F_isError(LZ4F_createCompressionContext(&state_->lz4, LZ4F_VERSION))) fail("cannot initialise lz4");
        // 64 KiB independent blocks: what a decoder must hold is small, no block refers to the one before
        // (linked blocks cost the compressor a dictionary update per block), and with autoFlush each
        // write of up to 64 KiB is compressed straight from the caller's bytes into one block, without
        // liblz4 copying it into a block buffer first. No content checksum (nor block checksums): TCP's
        // and TLS's integrity checks cover the bytes, and a checksum is a second pass over every byte.
        // The lz4 tool and carbon-c-relay's lz4 transport decode such frames as any other.
        state_->prefs.frameInfo.blockSizeID = LZ4F_max64KB;
        state_->prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        state_->prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
        state_->prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
        state_->prefs.autoFlush = 1;
        state_->prefs.compressionLevel = level_;
    }
}

StreamEncoder::~StreamEncoder() = default;

bool StreamEncoder::fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
}

char* StreamEncoder::reserve(size_t n) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (out_.size() - end_ < n) {
        if (begin_ > 0) {  // move what is pending to the front before growing
            std::memmove(out_.data(), out_.data() + begin_, end_ - begin_);
            end_ -= begin_;
            begin_ = 0;
        }
        if (out_.size() - end_ < n) out_.resize(std::max(out_.size() * 2, end_ + n));
    }
    return out_.data() + end_;
}

void StreamEncoder::consume(size_t n) {
    begin_ += std::min(n, end_ - begin_);
    if (begin_ == end_) begin_ = end_ = 0;
}

bool StreamEncoder::begin() {
    if (open_) return true;
    if (!error_.empty()) return false;
    if (compression_ == Compression::gzip) {
        if (state_->z_ready) deflateEnd(&state_->z);
        state_->z = {};
        state_->z_ready = false;
        // 16 + 15: a gzip wrapper with a 32 KiB window; memLevel 8 is zlib's default.
        if (deflateInit2(&state_->z, level_, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return fail("cannot initialise zlib");
        state_->z_ready = true;
    } else if (compression_ == Compression::lz4) {
        char* dst = reserve(LZ4F_HEADER_SIZE_MAX);
        size_t n = LZ4F_compressBegin(state_->lz4, dst, LZ4F_HEADER_SIZE_MAX, &state_->prefs);
        if (LZ4F_isError(n)) return fail(std::string("lz4: ") + LZ4F_getErrorName(n));
        end_ += n;
    }
    open_ = true;
    return true;
}

bool StreamEncoder::write(std::string_view in) {
    if (!begin()) return false;
    if (compression_ == Compression::none) {
        std::memcpy(reserve(in.size()), in.data(), in.size());
        end_ += in.size();
        return true;
    }
    while (!in.empty()) {
        std::string_view chunk = in.substr(0, kEncodeChunk);
        in.remove_prefix(chunk.size());
        if (compression_ == Compression::gzip) {
            z_stream& z = state_->z;
            z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunk.data()));
            z.avail_in = static_cast<uInt>(chunk.size());
            while (z.avail_in > 0) {
                const size_t room = deflateBound(&z, z.avail_in) + 16;
                z.next_out = reinterpret_cast<Bytef*>(reserve(room));
                z.avail_out = static_cast<uInt>(room);
                int code = deflate(&z, Z_NO_FLUSH);
                end_ += room - z.avail_out;
                if (code != Z_OK && code != Z_BUF_ERROR) return fail("gzip: " + zlib_message(z, code));
            }
        } else {
            const size_t room = LZ4F_compressBound(chunk.size(), &state_->prefs);
            size_t n = LZ4F_compressUpdate(state_->lz4, reserve(room), room, chunk.data(), chunk.size(), nullptr);
            if (LZ4F_isError(n)) return fail(std::string("lz4: ") + LZ4F_getErrorName(n));
            end_ += n;
        }
    }
    return true;
}

bool StreamEncoder::flush() {
    if (!open_ || compression_ == Compression::none) return error_.empty();
    if (compression_ == Compression::gzip) {
        z_stream& z = state_->z;
        z.avail_in = 0;
        do {  // what deflate still holds, then an empty stored block that ends on a byte boundary
            const size_t room = 64 * 1024;
            z.next_out = reinterpret_cast<Bytef*>(reserve(room));
            z.avail_out = static_cast<uInt>(room);
            int code = deflate(&z, Z_SYNC_FLUSH);
            end_ += room - z.avail_out;
            if (code != Z_OK && code != Z_BUF_ERROR) return fail("gzip: " + zlib_message(z, code));
        } while (z.avail_out == 0);
        return true;
    }
    const size_t room = LZ4F_compressBound(0, &state_->prefs);
    size_t n = LZ4F_flush(state_->lz4, reserve(room), room, nullptr);
    if (LZ4F_isError(n)) return fail(std::string("lz4: ") + LZ4F_getErrorName(n));
    end_ += n;
    return true;
}

bool StreamEncoder::finish() {
    if (!open_ || compression_ == Compression::none) {
        open_ = false;
        return error_.empty();
    }
    open_ = false;
    if (compression_ == Compression::gzip) {
        z_stream& z = state_->z;
        z.avail_in = 0;
        for (;;) {
            const size_t room = 64 * 1024;
            z.next_out = reinterpret_cast<Bytef*>(reserve(room));
            z.avail_out = static_cast<uInt>(room);
            int code = deflate(&z, Z_FINISH);
            end_ += room - z.avail_out;
            if (code == Z_STREAM_END) return true;
            if (code != Z_OK && code != Z_BUF_ERROR) return fail("gzip: " + zlib_message(z, code));
        }
    }
    const size_t room = LZ4F_compressBound(0, &state_->prefs);
    size_t n = LZ4F_compressEnd(state_->lz4, reserve(room), room, nullptr);
    if (LZ4F_isError(n)) return fail(std::string("lz4: ") + LZ4F_getErrorName(n));
    end_ += n;
    return true;
}

void StreamEncoder::restart() {
    begin_ = end_ = 0;
    open_ = false;
    error_.clear();
    // LZ4: the context is kept; LZ4F_compressBegin starts the next frame afresh (and its blocks are
    // independent), so a frame left unfinished leaves nothing behind. gzip: begin() re-initialises zlib.
}

}  // namespace polymur::protocol
