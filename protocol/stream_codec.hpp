// Compressed line streams, as carbon-c-relay's `transport gzip` and `transport lz4` carry them: one
// gzip stream (RFC 1952, zlib) or one LZ4 frame stream (liblz4's frame format) per connection, flushed
// at every batch so the peer can decode each batch as soon as it arrives. Pure: no I/O.
//
// Both directions work on bounded memory whatever the input: the decoder writes into the caller's
// buffer and never more than fits, and refuses LZ4 frames whose blocks are larger than its limit; the
// encoder's output buffer grows to the largest chunk it was given and is reused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace polymur::protocol {

enum class Compression : uint8_t { none, gzip, lz4 };

const char* compression_name(Compression compression);
// "none", "gzip" or "lz4".
bool parse_compression(std::string_view text, Compression& out);

// What the first bytes of a stream are: gzip's magic (1f 8b), an LZ4 frame's (04 22 4d 18), or neither
// (plain lines: neither magic can begin a valid line, both are control characters). `need_more`: the
// bytes so far begin a magic but are too few to tell.
enum class Sniffed : uint8_t { plain, gzip, lz4, need_more };
Sniffed sniff_compression(std::string_view first_bytes);

inline constexpr size_t kLz4MaxBlock = 4u << 20;  // LZ4's largest block size (the lz4 tool's default)

class StreamDecoder {
public:
    // `max_lz4_block`: LZ4 frames with larger blocks are refused (memory is about twice the block size).
    explicit StreamDecoder(Compression compression, size_t max_lz4_block = kLz4MaxBlock);
    ~StreamDecoder();
    StreamDecoder(const StreamDecoder&) = delete;
    StreamDecoder& operator=(const StreamDecoder&) = delete;

    // Decodes from `in` into `out` (at most `cap` bytes). `consumed` bytes of `in` were used and
    // `produced` bytes written. False: the stream is not what it claims (error() says why); it cannot
    // go on. Call again with the rest of `in`, and again while `produced == cap`: it may hold more.
    bool decode(std::string_view in, char* out, size_t cap, size_t& consumed, size_t& produced);
    // Between two gzip members or LZ4 frames (or before the first): the stream may end here whole.
    bool at_boundary() const { return at_boundary_; }
    const std::string& error() const { return error_; }
    Compression compression() const { return compression_; }

private:
    bool fail(std::string why);
    bool decode_gzip(std::string_view in, char* out, size_t cap, size_t& consumed, size_t& produced);
    bool decode_lz4(std::string_view in, char* out, size_t cap, size_t& consumed, size_t& produced);

    Compression compression_;
    size_t max_lz4_block_;
    bool at_boundary_ = true;
    bool failed_ = false;
    std::string error_;
    struct State;
    std::unique_ptr<State> state_;
};

class StreamEncoder {
public:
    // `level`: zlib's 1-9 for gzip; for LZ4, liblz4's: 1 its fast compressor, negative the same with
    // acceleration 1 - level, 3-12 high compression (64 KiB independent blocks without checksums).
    explicit StreamEncoder(Compression compression, int level = 1);
    ~StreamEncoder();
    StreamEncoder(const StreamEncoder&) = delete;
    StreamEncoder& operator=(const StreamEncoder&) = delete;

    // Compresses `in`, appending to pending(). A new stream (gzip header, LZ4 frame header) begins with
    // the first write after construction, finish() or restart().
    bool write(std::string_view in);
    // Makes everything written so far decodable by the peer now (gzip: a sync flush; LZ4: the block is
    // closed). A relay calls it at the end of every batch.
    bool flush();
    // Ends the stream (gzip trailer, LZ4 end mark and checksum).
    bool finish();
    // Drops the stream and its pending output: the next write begins a new one (a new connection).
    void restart();

    Compression compression() const { return compression_; }
    std::string_view pending() const { return {out_.data() + begin_, end_ - begin_}; }
    void consume(size_t n);
    const std::string& error() const { return error_; }

private:
    bool begin();
    char* reserve(size_t n);  // room for n more bytes at end_
    bool fail(std::string why);

    Compression compression_;
    int level_;
    bool open_ = false;
    std::string error_;
    std::vector<char> out_;
    size_t begin_ = 0, end_ = 0;
    struct State;
    std::unique_ptr<State> state_;
};

}  // namespace polymur::protocol
