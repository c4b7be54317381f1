// tls:// destinations: plaintext lines (or any framing) over TLS, as carbon-c-relay's
// `transport plain ssl` speaks it.
//
// When are bytes confirmed? SSL_write returns n > 0 only once the records carrying those n bytes
// were written whole to the socket (a record cut by a full socket buffer is finished by the retry
// before SSL_write succeeds). After each successful SSL_write the stream notes a checkpoint: the
// plaintext position it reached and the socket's byte count (BIO_number_written) at that moment,
// handshake and alerts included. The destination's kernel has acknowledged the socket's bytes up
// to written - SIOCOUTQ; the plaintext is confirmed up to the last checkpoint at or below that. So,
// exactly as for plain TCP, a batch is confirmed only once every TLS record that carries it left
// our send queue acknowledged, and what the destination's TLS layer then does with the records is
// as much (and as little) guaranteed as what a plaintext receiver does with acknowledged bytes.
#pragma once

#include <openssl/ssl.h>

#include <deque>
#include <string>

#include "common/unique_fd.hpp"
#include "worker/transport.hpp"

namespace polymur {

class TlsStream final : public ByteStream {
public:
    // `ctx` (owned by the caller, outliving the stream) says what is trusted and what we present.
    TlsStream(OutputLink& link, SSL_CTX* ctx, std::string host, std::string port)
            : link_(link), ctx_(ctx), host_(std::move(host)), port_(std::move(port)) {}
    ~TlsStream() override { close(); }

    Io open(std::string& error) override;
    bool is_open() const override { return ssl_ != nullptr; }
    void close() override;
    std::string connection_info() const override;
    ssize_t write(const struct iovec* iov, int count, std::string& error) override;
    bool flush(std::string&) override { return true; }
    short wait_events() const override { return wants_read_ ? POLLIN : POLLOUT; }
    uint64_t confirmed() override;
    bool peer_closed() override;
    int fd() const override { return socket_.get(); }

private:
    struct Checkpoint {
        uint64_t plaintext;  // bytes taken by SSL_write up to here
        uint64_t wire;       // bytes the socket had been given by then
    };

    OutputLink& link_;
    SSL_CTX* ctx_;
    std::string host_, port_;
    UniqueFd socket_;
    SSL* ssl_ = nullptr;
    bool wants_read_ = false;
    uint64_t taken_ = 0;
    uint64_t confirmed_ = 0;
    std::deque<Checkpoint> checkpoints_;  // not yet confirmed, oldest first
};

}  // namespace polymur
