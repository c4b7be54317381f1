#include "worker/input_stream.hpp"

#include <openssl/err.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "worker/tls.hpp"

namespace polymur {
namespace {

constexpr size_t kRawSize = 64 * 1024;  // compressed bytes read ahead of the decoder

}  // namespace

InputStream::~InputStream() {
    if (ssl_) SSL_free(ssl_);
}

bool InputStream::start_tls(SSL_CTX* context, int fd) {
    ssl_ = SSL_new(context);
    if (!ssl_) return false;
    SSL_set_fd(ssl_, fd);
    SSL_set_accept_state(ssl_);
    return true;
}

bool InputStream::handshaking() const { return ssl_ && !SSL_is_init_finished(ssl_); }

bool InputStream::take_handshake_done() {
    if (handshake_counted_ || !ssl_ || !SSL_is_init_finished(ssl_)) return false;
    handshake_counted_ = true;
    return true;
}

bool InputStream::has_buffered() const {
    return deferred_ != Status::data || (ssl_ && SSL_pending(ssl_) > 0) || raw_begin_ < raw_end_ || decoder_full_;
}

void InputStream::start_decoding(protocol::Compression compression, std::string_view first) {
    decoder_ = std::make_unique<protocol::StreamDecoder>(compression);
    raw_.reset(new char[kRawSize]);
    raw_begin_ = 0;
    raw_end_ = std::min(first.size(), kRawSize);
    std::memcpy(raw_.get(), first.data(), raw_end_);
}

InputStream::Status InputStream::read_decoded(int fd, char* buf, size_t cap, size_t& got) {
    got = 0;
    for (;;) {
        // Decoded bytes can wait inside the decoder after all their input was consumed (its last call
        // filled the buffer): ask it again before reading, or they would wait for more input, or be lost
        // at the end of the stream.
        if (raw_begin_ < raw_end_ || decoder_full_) {
            size_t consumed = 0, produced = 0;
            if (!decoder_->decode({raw_.get() + raw_begin_, raw_end_ - raw_begin_}, buf + got, cap - got, consumed,
                                  produced)) {
                failed_in_decoding_ = true;
                Status failed = fail(std::string(protocol::compression_name(decoder_->compression())) +
                                     " stream refused: " + decoder_->error());
                if (got == 0) return failed;
                deferred_ = failed;
                return Status::data;
            }
            decoder_full_ = produced == cap - got;
            raw_begin_ += consumed;
            got += produced;
            if (got == cap) return Status::data;  // more may wait inside: has_buffered() says so
            if (consumed == 0 && produced == 0 && raw_begin_ > 0) {
                // A partial block or header: keep it at the front and read more behind it.
                std::memmove(raw_.get(), raw_.get() + raw_begin_, raw_end_ - raw_begin_);
                raw_end_ -= raw_begin_;
                raw_begin_ = 0;
            } else if (consumed == 0 && produced == 0 && raw_end_ == kRawSize) {
                failed_in_decoding_ = true;
                return fail("compressed stream refused: a header or block that does not fit in 64 KiB");
            }
            if (raw_begin_ == raw_end_) raw_begin_ = raw_end_ = 0;
        }
        size_t n = 0;
        Status status = deferred_ != Status::data ? std::exchange(deferred_, Status::data)
                                                  : read_source(fd, raw_.get() + raw_end_, kRawSize - raw_end_, n);
        if (status == Status::data) {
            raw_end_ += n;
            continue;
        }
        if (status == Status::eof && (raw_begin_ < raw_end_ || !decoder_->at_boundary())) {
            failed_in_decoding_ = true;
            status = fail(std::string(protocol::compression_name(decoder_->compression())) +
                          " stream cut short at the end of the connection");
        }
        if (got == 0) return status;
        if (status != Status::again) deferred_ = status;
        return Status::data;
    }
}

InputStream::Status InputStream::fail(std::string why) {
    failure_ = std::move(why);
    return Status::failed;
}

InputStream::Status InputStream::read(int fd, char* buf, size_t cap, size_t& got) {
    got = 0;
    wants_write_ = false;
    // With a decoder, a status the source met waits until the bytes read before it are decoded.
    if (decoder_) return read_decoded(fd, buf, cap, got);
    if (deferred_ != Status::data) return std::exchange(deferred_, Status::data);
    return read_source(fd, buf, cap, got);
}

InputStream::Status InputStream::read_source(int fd, char* buf, size_t cap, size_t& got) {
    got = 0;
    if (!ssl_) {
        ssize_t n = ::read(fd, buf, cap);
        if (n > 0) {
            got = static_cast<size_t>(n);
            return Status::data;
        }
        if (n == 0) return Status::eof;
        if (errno == EAGAIN || errno == EINTR) return Status::again;
        return fail(std::strerror(errno));
    }
    Status status = Status::again;
    // SSL_read returns one record at a time: fill the buffer, so a short read means the socket is drained.
    while (got < cap) {
        ERR_clear_error();
        const bool in_handshake = !SSL_is_init_finished(ssl_);
        size_t n = 0;
        int ok = SSL_read_ex(ssl_, buf + got, cap - got, &n);
        if (ok == 1) {
            got += n;
            continue;
        }
        int error = SSL_get_error(ssl_, ok);
        if (error == SSL_ERROR_WANT_READ) break;
        if (error == SSL_ERROR_WANT_WRITE) {
            wants_write_ = true;
            break;
        }
        if (error == SSL_ERROR_ZERO_RETURN) {
            status = Status::eof;
        } else if (in_handshake) {
            BIO* rbio = SSL_get_rbio(ssl_);
            if (!rbio || BIO_number_read(rbio) == 0) {
                status = Status::eof;  // left before saying anything: a TCP health check, not a refused client
            } else {
                failed_in_handshake_ = true;
                std::string why = openssl_errors();
                if (why.empty())
                    why = error == SSL_ERROR_SYSCALL && errno ? std::strerror(errno)
                                                              : "connection closed during the handshake";
                long verify = SSL_get_verify_result(ssl_);
                if (verify != X509_V_OK) why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
                status = fail("TLS handshake failed: " + why);
            }
        } else if (error == SSL_ERROR_SYSCALL && errno == 0) {
            status = Status::eof;
        } else {
            std::string why = openssl_errors();
            if (why.empty()) why = errno ? std::strerror(errno) : "unknown error";
            status = fail("TLS read failed: " + why);
        }
        break;
    }
    if (got == 0) return status;
    if (status != Status::again) deferred_ = status;
    return Status::data;
}

}  // namespace polymur
