// The stream shape of transport (see worker/transport.hpp): a Framing turns each batch of queued
// lines into the bytes the destination reads (plain lines as they are, or carbon's pickle frames),
// and a ByteStream carries them (TCP, the console; TLS or compression over TCP). Batches are
// pipelined; a batch is confirmed once the stream confirmed every byte framed for it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string_view>

#include "worker/transport.hpp"

namespace polymur {

class Framing {
public:
    virtual ~Framing() = default;
    // The bytes the destination reads for `batch`: up to two views (empty ones are skipped), valid
    // until the batch is released. Lines the framing cannot carry are left out (and counted by it).
    virtual void frame(const shm::ReadBatch& batch, std::string_view (&parts)[2]) = 0;
    // The oldest batch framed and not yet released was written whole.
    virtual void release_oldest() {}
    // Every batch framed is forgotten.
    virtual void reset() {}
};

// Plain lines: the queue already holds them as the destination reads them.
class LineFraming final : public Framing {
public:
    void frame(const shm::ReadBatch& batch, std::string_view (&parts)[2]) override {
        parts[0] = batch.spans[0];
        parts[1] = batch.spans[1];
    }
};

class StreamTransport final : public Transport {
public:
    StreamTransport(OutputLink& link, std::unique_ptr<Framing> framing, std::unique_ptr<ByteStream> stream);

    Delivery delivery() const override { return Delivery::stream; }
    Io open(std::string& error) override;
    bool is_open() const override { return stream_->is_open(); }
    void close(bool lost) override;
    std::string connection_info() const override { return stream_->connection_info(); }
    uint64_t batch_limit() const override { return ~uint64_t(0); }
    uint64_t read_limit() const override { return kChunkMax; }
    uint64_t add(const shm::ReadBatch& batch) override;
    bool has_unsent() const override { return written_ < framed_ || flush_pending_; }
    Sent send(std::string& error) override;
    uint64_t confirmed() override { return stream_->confirmed(); }
    bool await_confirmation(int ms) override;
    bool closed_while_idle() override { return stream_->peer_closed(); }
    void reset() override;

    static constexpr uint64_t kChunkMax = 256 * 1024;  // commit granularity

private:
    struct Frame {
        std::string_view parts[2];
        uint64_t end;  // stream position just past the frame
    };

    OutputLink& link_;
    std::unique_ptr<Framing> framing_;
    std::unique_ptr<ByteStream> stream_;
    std::deque<Frame> frames_;  // framed and not yet written whole
    uint64_t framed_ = 0;       // stream position past the last frame
    uint64_t written_ = 0;      // bytes the stream took
    uint64_t marked_ = 0;       // position of the last batch end the stream was told of (end_batch)
    bool flush_pending_ = false;
};

}  // namespace polymur
