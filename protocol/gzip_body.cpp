#include "protocol/gzip_body.hpp"

#include <algorithm>
#include <cstring>
#include <new>

namespace polymur::protocol {

GzipBody::~GzipBody() {
    if (ready_) inflateEnd(&zs_);
}

bool GzipBody::init() {
    if (ready_) return true;
    ready_ = inflateInit2(&zs_, 15 + 16) == Z_OK;  // gzip wrapper only
    return ready_;
}

void GzipBody::shrink_to(size_t keep) {
    if (capacity_ <= keep) return;
    buffer_.reset();
    capacity_ = length_ = 0;
}

// Grows the (empty) buffer to `size` without copying.
bool GzipBody::reserve(size_t size) {
    if (size <= capacity_) return true;
    buffer_.reset();  // nothing in it yet: no copy, no two buffers at once
    capacity_ = 0;
    buffer_.reset(new (std::nothrow) char[size]);
    if (!buffer_) return false;
    capacity_ = size;
    return true;
}

GzipBody::Result GzipBody::decode(const std::string_view* chunks, size_t count, size_t limit) {
    length_ = 0;
    if (!ready_) return Result::not_gzip;
    const size_t stop = limit + 1;  // one more byte: "too large"
    size_t total = 0;
    for (size_t i = 0; i < count; ++i) total += chunks[i].size();
    if (total == 0) return Result::not_gzip;
    if (inflateReset(&zs_) != Z_OK) return Result::not_gzip;
    // gzip's trailer holds the (last member's) size mod 2^32: a hint to allocate once, never trusted
    // beyond the limit.
    if (total >= 18) {
        unsigned char trailer[4];
        size_t need = 4;
        for (size_t i = count; i-- > 0 && need > 0;) {
            for (size_t k = chunks[i].size(); k-- > 0 && need > 0;)
                trailer[--need] = static_cast<unsigned char>(chunks[i][k]);
        }
        size_t hint = static_cast<size_t>(trailer[0]) | static_cast<size_t>(trailer[1]) << 8 |
            static_cast<size_t>(trailer[2]) << 16 | static_cast<size_t>(trailer[3]) << 24;
        if (!reserve(std::min(stop, hint + 1))) return Result::no_memory;
    }
    bool in_member = false;  // inside a gzip member (a stream may hold several, as gzip(1) makes them)
    bool full = false;       // the last inflate filled the buffer: it may hold more output
    for (size_t i = 0; i < count; ++i) {
        zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(chunks[i].data()));
        zs_.avail_in = static_cast<uInt>(chunks[i].size());
        while (zs_.avail_in > 0 || full) {
            if (length_ == capacity_) {
                if (capacity_ >= stop) return Result::too_large;
                size_t grown = std::min(stop, std::max<size_t>(capacity_ * 2, 256 * 1024));
                std::unique_ptr<char[]> bigger(new (std::nothrow) char[grown]);
                if (!bigger) return Result::no_memory;
                if (length_) std::memcpy(bigger.get(), buffer_.get(), length_);
                buffer_ = std::move(bigger);
                capacity_ = grown;
            }
            zs_.next_out = reinterpret_cast<Bytef*>(buffer_.get() + length_);
            zs_.avail_out = static_cast<uInt>(std::min<size_t>(capacity_ - length_, 1u << 30));
            uInt before = zs_.avail_out;
            if (zs_.avail_in > 0) in_member = true;
            int rc = ::inflate(&zs_, Z_NO_FLUSH);
            length_ += before - zs_.avail_out;
            full = zs_.avail_out == 0;
            if (length_ >= stop) return Result::too_large;
            if (rc == Z_STREAM_END) {
                in_member = false;
                full = false;
                if (inflateReset(&zs_) != Z_OK) return Result::not_gzip;
                continue;
            }
            if (rc == Z_BUF_ERROR) {
                if (full) continue;            // needs more room
                if (zs_.avail_in == 0) break;  // needs more input
                return Result::not_gzip;
            }
            if (rc != Z_OK) return Result::not_gzip;
        }
    }
    if (in_member) return Result::not_gzip;  // truncated
    return Result::ok;
}

}  // namespace polymur::protocol
