// What a listener connection reads its lines through, when it is more than the socket itself: a TLS
// session (--tls-listen-addr) and/or a gzip or LZ4 stream (recognised by its first bytes). The listener
// splits, validates and routes what comes out exactly as it does for bytes read straight from a
// plaintext socket.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/stream_codec.hpp"

namespace polymur {

class InputStream {
public:
    enum class Status : uint8_t {
        data,    // `got` bytes (at least one) are in the buffer
        again,   // nothing more now; wait for the socket (readable, or writable when wants_write())
        eof,     // the client ended the stream (close_notify, or a TCP close after the handshake)
        failed,  // the stream is broken (failure() says why); close the connection
    };

    InputStream() = default;
    ~InputStream();
    InputStream(const InputStream&) = delete;
    InputStream& operator=(const InputStream&) = delete;

    // Starts a server-side TLS session on `fd` (a just-accepted socket). False: out of memory.
    bool start_tls(SSL_CTX* context, int fd);

    // From now on the stream is compressed; `first` are its first bytes, already read.
    void start_decoding(protocol::Compression compression, std::string_view first);
    bool decoding() const { return decoder_ != nullptr; }
    // The stream failed because its compressed bytes are not what they claim (not a TLS problem).
    bool failed_in_decoding() const { return failed_in_decoding_; }

    // Reads up to `cap` decoded bytes into `buf`, as many as there are without waiting.
    Status read(int fd, char* buf, size_t cap, size_t& got);

    bool handshaking() const;
    // True once, when the handshake has just completed (for the count of completed handshakes).
    bool take_handshake_done();
    // The handshake failed (a refused client), as opposed to a stream broken later or a client that
    // left before it sent a byte.
    bool failed_in_handshake() const { return failed_in_handshake_; }
    // The last read stopped because TLS must write first (the handshake's answer did not fit).
    bool wants_write() const { return wants_write_; }
    // Decoded bytes (or a status) are held inside, so the socket becoming readable is not the only
    // reason to read again.
    bool has_buffered() const;
    const std::string& failure() const { return failure_; }

private:
    Status fail(std::string why);
    // The bytes as they come off the socket (through TLS when there is a session).
    Status read_source(int fd, char* buf, size_t cap, size_t& got);
    Status read_decoded(int fd, char* buf, size_t cap, size_t& got);

    SSL* ssl_ = nullptr;
    bool handshake_counted_ = false;
    bool failed_in_handshake_ = false;
    bool failed_in_decoding_ = false;
    std::unique_ptr<protocol::StreamDecoder> decoder_;
    std::unique_ptr<char[]> raw_;  // compressed bytes read, not yet decoded: raw_[raw_begin_, raw_end_)
    size_t raw_begin_ = 0, raw_end_ = 0;
    bool decoder_full_ = false;  // the last decode filled its buffer: the decoder may hold more output
    bool wants_write_ = false;
    Status deferred_ = Status::data;  // a status met after some data was returned (data: none)
    std::string failure_;
};

}  // namespace polymur
