// A gateway request body: one or more gzip members (as gzip(1) writes them), decompressed into one
// buffer of at most a set number of bytes, so a gzip bomb stops at the limit. Pure code (zlib, no I/O);
// the buffer is kept between requests.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include <zlib.h>

namespace polymur::protocol {

class GzipBody {
public:
    enum class Result { ok, not_gzip, too_large, no_memory };

    GzipBody() = default;
    GzipBody(const GzipBody&) = delete;
    GzipBody& operator=(const GzipBody&) = delete;
    ~GzipBody();

    // Sets up zlib; false when it cannot.
    bool init();

    // Decompresses the body that lies in `chunks[0..count)` (in order, as a network buffer holds it).
    // ok: text() is the whole decompressed body, at most `limit` bytes.
    Result decode(const std::string_view* chunks, size_t count, size_t limit);

    std::string_view text() const { return std::string_view(buffer_.get(), length_); }

    // Gives the buffer back when it grew beyond `keep` bytes (after one very large request).
    void shrink_to(size_t keep);

private:
    bool reserve(size_t size);

    z_stream zs_ {};
    bool ready_ = false;
    std::unique_ptr<char[]> buffer_;
    size_t capacity_ = 0;
    size_t length_ = 0;
};

}  // namespace polymur::protocol
