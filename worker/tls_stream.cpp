#include "worker/tls_stream.hpp"

#include <linux/sockios.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <climits>

#include "common/clock.hpp"
#include "common/net.hpp"
#include "worker/tls_client.hpp"

namespace polymur {

Io TlsStream::open(std::string& error) {
    close();
    const uint32_t timeout_ms = link_.connect_timeout_ms();
    socket_ = net::connect_tcp(host_, port_, static_cast<int>(timeout_ms), error);
    if (!socket_) return Io::failed;
    Io io = tls_client_handshake(ctx_, socket_.get(), host_, link_, monotonic_ms() + timeout_ms, ssl_, error);
    if (io != Io::ok) socket_.reset();
    return io;
}

void TlsStream::close() {
    if (ssl_) {
        SSL_shutdown(ssl_);  // best effort close_notify; the socket is non-blocking
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    socket_.reset();
    wants_read_ = false;
    taken_ = confirmed_ = 0;
    checkpoints_.clear();
}

std::string TlsStream::connection_info() const {
    return ssl_ ? std::string(" (") + SSL_get_version(ssl_) + ", " + SSL_get_cipher_name(ssl_) + ")" : std::string();
}

ssize_t TlsStream::write(const struct iovec* iov, int count, std::string& error) {
    size_t total = 0;
    wants_read_ = false;
    for (int i = 0; i < count; ++i) {
        const char* data = static_cast<const char*>(iov[i].iov_base);
        size_t left = iov[i].iov_len;
        while (left > 0) {
            ERR_clear_error();
            errno = 0;
            int rc = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(left, INT_MAX)));
            if (rc > 0) {
                data += rc;
                left -= static_cast<size_t>(rc);
                total += static_cast<size_t>(rc);
                taken_ += static_cast<uint64_t>(rc);
                checkpoints_.push_back({taken_, BIO_number_written(SSL_get_wbio(ssl_))});
                continue;
            }
            int code = SSL_get_error(ssl_, rc);
            if (code == SSL_ERROR_WANT_WRITE || code == SSL_ERROR_WANT_READ) {
                // The same bytes come again next time (the stream transport resends from what was taken).
                wants_read_ = code == SSL_ERROR_WANT_READ;
                return static_cast<ssize_t>(total);
            }
            error = tls_failure(ssl_, rc, "TLS write failed", "the destination");
            return -1;
        }
    }
    return static_cast<ssize_t>(total);
}

uint64_t TlsStream::confirmed() {
    int unacked = 0;
    if (!ssl_ || ioctl(socket_.get(), SIOCOUTQ, &unacked) != 0) return confirmed_;
    const uint64_t wire = BIO_number_written(SSL_get_wbio(ssl_));
    const uint64_t acked = wire - std::min<uint64_t>(wire, static_cast<uint64_t>(unacked));
    while (!checkpoints_.empty() && checkpoints_.front().wire <= acked) {
        confirmed_ = checkpoints_.front().plaintext;
        checkpoints_.pop_front();
    }
    return confirmed_;
}

// A Graphite destination never sends data; what can arrive is TLS 1.3 session tickets (handled
// inside SSL_read), a close_notify, or a reset.
bool TlsStream::peer_closed() {
    if (!ssl_) return true;
    struct pollfd pfd = {socket_.get(), POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0) return false;
    char sink[512];
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_read(ssl_, sink, sizeof sink);
        if (rc > 0) continue;  // ignored, as a plaintext destination's bytes are
        int code = SSL_get_error(ssl_, rc);
        if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return false;
        ERR_clear_error();
        return true;
    }
}

}  // namespace polymur
