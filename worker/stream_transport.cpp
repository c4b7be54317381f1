#include "worker/stream_transport.hpp"

#include <poll.h>

#include "common/clock.hpp"

namespace polymur {
namespace {

constexpr size_t kMaxIov = 128;
constexpr int kWaitSliceMs = 100;  // longest wait for the stream to take more before the loop commits

}  // namespace

StreamTransport::StreamTransport(OutputLink& link, std::unique_ptr<Framing> framing, std::unique_ptr<ByteStream> stream)
        : link_(link), framing_(std::move(framing)), stream_(std::move(stream)) {}

Io StreamTransport::open(std::string& error) {
    reset();
    return stream_->open(error);
}

void StreamTransport::close(bool) {
    stream_->close();
    reset();
}

void StreamTransport::reset() {
    frames_.clear();
    framing_->reset();
    framed_ = written_ = marked_ = 0;
    flush_pending_ = false;
}

uint64_t StreamTransport::add(const shm::ReadBatch& batch) {
    Frame frame {};
    framing_->frame(batch, frame.parts);
    framed_ += frame.parts[0].size() + frame.parts[1].size();
    frame.end = framed_;
    frames_.push_back(frame);
    return framed_;
}

// Hands the stream what is framed and not yet written, waiting at most one slice when it cannot
// take more, so the loop commits what was confirmed meanwhile and beats the heartbeat.
Sent StreamTransport::send(std::string& error) {
    bool waited = false;
    const bool per_batch = stream_->confirms_at_batch_ends();
    for (;;) {
        while (!frames_.empty() && frames_.front().end <= written_) {
            if (per_batch && frames_.front().end > marked_) {
                if (!stream_->end_batch(error)) return Sent::lost;
                marked_ = frames_.front().end;
            }
            frames_.pop_front();
            framing_->release_oldest();
        }
        ssize_t n = 0;
        if (written_ < framed_) {
            struct iovec iov[kMaxIov];
            int count = 0;
            uint64_t position = written_;
            for (const Frame& f : frames_) {
                if (per_batch && count > 0) break;  // one batch per write: the stream marks where it ends
                uint64_t start = f.end - f.parts[0].size() - f.parts[1].size();
                uint64_t skip = position > start ? position - start : 0;
                for (std::string_view part : f.parts) {
                    if (skip >= part.size()) {
                        skip -= part.size();
                        continue;
                    }
                    iov[count++] = {const_cast<char*>(part.data() + skip), part.size() - skip};
                    skip = 0;
                    if (count == static_cast<int>(kMaxIov)) break;
                }
                if (count == static_cast<int>(kMaxIov)) break;
            }
            n = stream_->write(iov, count, error);
            if (n < 0) return Sent::lost;
            written_ += static_cast<uint64_t>(n);
            flush_pending_ = true;
            if (n > 0) continue;
        } else if (flush_pending_) {
            if (stream_->flush(error)) {
                flush_pending_ = false;
                return Sent::ok;
            }
            if (!error.empty()) return Sent::lost;
        } else {
            return Sent::ok;
        }
        // The stream cannot take more now.
        if (waited) return Sent::ok;
        waited = true;
        struct pollfd pfd = {stream_->fd(), stream_->wait_events(), 0};
        poll(&pfd, 1, kWaitSliceMs);
        int64_t now = monotonic_ms();
        link_.beat(now);
        if (link_.must_abort(now)) return Sent::aborted;
    }
}

bool StreamTransport::await_confirmation(int ms) {
    struct pollfd pfd = {stream_->fd(), POLLIN, 0};
    poll(&pfd, 1, ms);
    return !(pfd.revents && stream_->peer_closed());
}

}  // namespace polymur
