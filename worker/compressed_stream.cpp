#include "worker/compressed_stream.hpp"

#include <string_view>

namespace polymur {

CompressedStream::CompressedStream(protocol::Compression compression, std::unique_ptr<ByteStream> inner)
        : encoder_(compression), inner_(std::move(inner)) {}

Io CompressedStream::open(std::string& error) {
    encoder_.restart();
    taken_ = produced_ = marked_ = confirmed_ = 0;
    checkpoints_.clear();
    return inner_->open(error);
}

void CompressedStream::close() {
    const size_t before = encoder_.pending().size();
    if (inner_->is_open() && encoder_.error().empty() && encoder_.finish()) {
        // Best effort: the end of the stream, if the stream below takes it now.
        produced_ += encoder_.pending().size() - before;
        std::string ignored;
        push(ignored);
        inner_->flush(ignored);
    }
    encoder_.restart();
    inner_->close();
}

std::string CompressedStream::connection_info() const {
    return std::string(" (") + protocol::compression_name(encoder_.compression()) + ")" + inner_->connection_info();
}

int CompressedStream::push(std::string& error) {
    while (!encoder_.pending().empty()) {
        std::string_view held = encoder_.pending();
        struct iovec iov = {const_cast<char*>(held.data()), held.size()};
        ssize_t n = inner_->write(&iov, 1, error);
        if (n < 0) return -1;
        if (n == 0) return 0;
        encoder_.consume(static_cast<size_t>(n));
    }
    return 1;
}

ssize_t CompressedStream::write(const struct iovec* iov, int count, std::string& error) {
    if (push(error) < 0) return -1;
    if (encoder_.pending().size() >= kMaxHeld) return 0;  // wait until the stream below takes them
    size_t total = 0;
    const size_t before = encoder_.pending().size();
    for (int i = 0; i < count; ++i) {
        if (!encoder_.write({static_cast<const char*>(iov[i].iov_base), iov[i].iov_len})) {
            error = "compressing: " + encoder_.error();
            return -1;
        }
        total += iov[i].iov_len;
    }
    produced_ += encoder_.pending().size() - before;
    taken_ += total;
    if (push(error) < 0) return -1;
    return static_cast<ssize_t>(total);
}

bool CompressedStream::end_batch(std::string& error) {
    if (taken_ == marked_) return true;
    const size_t before = encoder_.pending().size();
    if (!encoder_.flush()) {
        error = "compressing: " + encoder_.error();
        return false;
    }
    produced_ += encoder_.pending().size() - before;
    marked_ = taken_;
    checkpoints_.push_back({taken_, produced_});
    return push(error) >= 0;
}

bool CompressedStream::flush(std::string& error) {
    if (taken_ != marked_ && !end_batch(error)) return false;
    int pushed = push(error);
    if (pushed <= 0) return false;
    return inner_->flush(error);
}

uint64_t CompressedStream::confirmed() {
    const uint64_t compressed = inner_->confirmed();
    while (!checkpoints_.empty() && checkpoints_.front().compressed <= compressed) {
        confirmed_ = checkpoints_.front().plain;
        checkpoints_.pop_front();
    }
    return confirmed_;
}

}  // namespace polymur
