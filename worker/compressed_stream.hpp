// gzip:// and lz4:// destinations (and gzip+tls://, lz4+tls://): the line stream compressed as
// carbon-c-relay's `transport gzip|lz4` sends it, over a TCP or TLS stream (protocol/stream_codec).
//
// When are lines confirmed? Compressed bytes mean nothing to the destination until the compressor is
// flushed: gzip's sync flush and the end of an LZ4 block are the only points up to which the peer
// can decode. So the stream compresses one batch at a time, flushes at its end (end_batch) and notes
// a checkpoint: the uncompressed position reached and the compressed position at that moment. The
// stream below confirms compressed bytes (TCP: its kernel acknowledged them; TLS: every record
// carrying them); the lines are confirmed up to the last checkpoint at or below that. A batch is
// thus committed only once every compressed byte of it, its flush included, was acknowledged.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "protocol/stream_codec.hpp"
#include "worker/transport.hpp"

namespace polymur {

class CompressedStream final : public ByteStream {
public:
    CompressedStream(protocol::Compression compression, std::unique_ptr<ByteStream> inner);

    Io open(std::string& error) override;
    bool is_open() const override { return inner_->is_open(); }
    // A clean close ends the stream (gzip trailer, LZ4 end mark) so the peer sees it whole.
    void close() override;
    std::string connection_info() const override;
    ssize_t write(const struct iovec* iov, int count, std::string& error) override;
    bool confirms_at_batch_ends() const override { return true; }
    bool end_batch(std::string& error) override;
    bool flush(std::string& error) override;
    short wait_events() const override { return inner_->wait_events(); }
    uint64_t confirmed() override;
    bool peer_closed() override { return inner_->peer_closed(); }
    int fd() const override { return inner_->fd(); }

    // Compressed bytes held back before the stream takes no more input (until the stream below takes them).
    static constexpr size_t kMaxHeld = 256 * 1024;

private:
    struct Checkpoint {
        uint64_t plain;       // uncompressed bytes taken up to here
        uint64_t compressed;  // compressed bytes produced by then, the flush included
    };
    // Hands held compressed bytes to the stream below; -1 on failure.
    int push(std::string& error);

    protocol::StreamEncoder encoder_;
    std::unique_ptr<ByteStream> inner_;
    uint64_t taken_ = 0;     // uncompressed bytes taken since open
    uint64_t produced_ = 0;  // compressed bytes produced since open
    uint64_t marked_ = 0;    // uncompressed position of the last checkpoint
    uint64_t confirmed_ = 0;
    std::deque<Checkpoint> checkpoints_;  // not yet confirmed, oldest first
};

}  // namespace polymur
