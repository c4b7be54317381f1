#include "worker/https_transport.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/unique_fd.hpp"
#include "protocol/http_response.hpp"
#include "shm/queue.hpp"
#include "worker/tls_client.hpp"

namespace polymur {
namespace {

constexpr int kGzipLevel = 1;
constexpr size_t kHeaderRoom = 1024;       // request line and headers go right before the gzip body
constexpr size_t kReadBuffer = 16 * 1024;  // response status line, headers and (discarded) body

class HttpsTransport final : public Transport {
public:
    HttpsTransport(OutputLink& link, const Config& config, const DestinationSpec& spec)
            : link_(link), config_(config), text_(spec.endpoint.text), host_(spec.https.host), port_(spec.https.port),
              authority_(spec.https.authority), path_(spec.https.path) {}
    ~HttpsTransport() override;

    bool start(std::string& error);

    Delivery delivery() const override { return Delivery::exchange; }
    Io open(std::string& error) override;
    bool is_open() const override { return ssl_ != nullptr; }
    void close(bool lost) override { disconnect(lost); }
    std::string connection_info() const override {
        return ssl_ ? std::string(" (") + SSL_get_version(ssl_) + ", " + SSL_get_cipher_name(ssl_) + ")"
                    : std::string();
    }
    uint64_t batch_limit() const override { return batch_limit_; }
    uint64_t read_limit() const override { return batch_limit_; }
    uint64_t add(const shm::ReadBatch& batch) override;
    bool has_unsent() const override { return batch_raw_bytes_ > 0 || batch_broken_; }
    Sent send(std::string& error) override;
    uint64_t confirmed() override { return confirmed_; }
    bool await_confirmation(int) override { return true; }
    bool closed_while_idle() override {
        if (ssl_ && idle_connection_closed()) disconnect(false);
        return false;
    }
    void reset() override {
        batch_raw_bytes_ = batch_lines_ = 0;
        batch_broken_ = false;
    }

private:
    void disconnect(bool lost);
    bool idle_connection_closed();
    bool finish_body();
    // Sends the batch; returns the HTTP status, or 0 with `error` set (network, TLS, timeout).
    int post(std::string& error, bool& got_nothing, Io& io);
    Io write_all(const char* data, size_t len, int64_t deadline, std::string& error);
    Io fill(int64_t deadline, std::string& error);  // reads more into rbuf_; EOF is a failure
    std::string tls_error(int rc, const char* what);

    OutputLink& link_;
    const Config& config_;
    std::string text_;
    std::string host_, port_, authority_, path_;  // https://host:port[/path]: POST to <path>/ingest

    // The batch in flight: kept (compressed) until the gateway answers 200.
    uint64_t batch_lines_ = 0;
    uint64_t batch_raw_bytes_ = 0;
    bool batch_broken_ = false;  // compressing it failed: read it again
    bool body_done_ = false;
    size_t body_len_ = 0;
    uint64_t confirmed_ = 0;       // raw bytes of every batch the gateway took
    uint64_t batch_limit_ = 0;     // --batch-bytes, halved on 413
    std::unique_ptr<char[]> out_;  // kHeaderRoom + gzip body
    size_t out_cap_ = 0;
    z_stream zs_ {};
    bool zs_ready_ = false;

    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    UniqueFd socket_;
    uint64_t requests_on_connection_ = 0;
    char rbuf_[kReadBuffer];
    size_t rstart_ = 0, rend_ = 0;
    protocol::HttpResponseReader response_;
};

HttpsTransport::~HttpsTransport() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (zs_ready_) deflateEnd(&zs_);
}

bool HttpsTransport::start(std::string& error) {
    // Only the private CA: the gateway's certificate must chain to --ca-cert.
    ctx_ = new_tls_client_context("ca-cert", config_.ca_cert, "client-cert", config_.client_cert, "client-key",
                                  config_.client_key, error);
    if (!ctx_) return false;
    if (deflateInit2(&zs_, kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        error = "cannot initialise zlib";
        return false;
    }
    zs_ready_ = true;
    batch_limit_ = std::max<uint64_t>(config_.batch_bytes, 1);
    // The largest batch: the limit, or one line longer than it. Lines are bounded by what any
    // producer may write, not by this run's --max-line-length: the queue may be older.
    uint64_t largest = std::max<uint64_t>(batch_limit_, shm::kMaxQueuedLine);
    out_cap_ = kHeaderRoom + deflateBound(&zs_, static_cast<uLong>(largest)) + 64;
    out_.reset(new char[out_cap_]);
    return true;
}

std::string HttpsTransport::tls_error(int rc, const char* what) { return tls_failure(ssl_, rc, what, "the gateway"); }

Io HttpsTransport::open(std::string& error) {
    const uint32_t connect_timeout_ms = link_.connect_timeout_ms();
    socket_ = net::connect_tcp(host_, port_, static_cast<int>(connect_timeout_ms), error);
    if (!socket_) {
        error = "connect failed: " + error;
        return Io::failed;
    }
    Io io = tls_client_handshake(ctx_, socket_.get(), host_, link_, monotonic_ms() + connect_timeout_ms, ssl_, error);
    if (io != Io::ok) {
        socket_.reset();
        return io;
    }
    requests_on_connection_ = 0;
    rstart_ = rend_ = 0;
    return Io::ok;
}

void HttpsTransport::disconnect(bool lost) {
    if (ssl_) {
        if (!lost) SSL_shutdown(ssl_);  // best effort close_notify; the socket is non-blocking
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    socket_.reset();
    rstart_ = rend_ = 0;
}

// Between requests the gateway sends nothing, except TLS 1.3 session tickets; anything readable
// beyond those means it closed the idle connection (its request timeout).
bool HttpsTransport::idle_connection_closed() {
    struct pollfd pfd = {socket_.get(), POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0) return false;
    char byte;
    ERR_clear_error();
    int rc = SSL_read(ssl_, &byte, 1);
    if (rc <= 0 && SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ) return false;
    ERR_clear_error();
    return true;
}

Io HttpsTransport::write_all(const char* data, size_t len, int64_t deadline, std::string& error) {
    while (len > 0) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(len, 1u << 30)));
        if (rc > 0) {
            data += rc;
            len -= static_cast<size_t>(rc);
            link_.progressed(monotonic_ms());
            continue;
        }
        int code = SSL_get_error(ssl_, rc);
        Io io;
        if (code == SSL_ERROR_WANT_WRITE) io = link_.wait_fd(socket_.get(), POLLOUT, deadline, error);
        else if (code == SSL_ERROR_WANT_READ) io = link_.wait_fd(socket_.get(), POLLIN, deadline, error);
        else {
            error = tls_error(rc, "sending the batch failed");
            return Io::failed;
        }
        if (io != Io::ok) {
            if (io == Io::failed) error = "sending the batch: " + error;
            return io;
        }
    }
    return Io::ok;
}

Io HttpsTransport::fill(int64_t deadline, std::string& error) {
    if (rstart_ > 0) {
        std::memmove(rbuf_, rbuf_ + rstart_, rend_ - rstart_);
        rend_ -= rstart_;
        rstart_ = 0;
    }
    if (rend_ == sizeof rbuf_) {
        error = "a response line or header is longer than " + std::to_string(sizeof rbuf_) + " bytes";
        return Io::failed;
    }
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_read(ssl_, rbuf_ + rend_, static_cast<int>(sizeof rbuf_ - rend_));
        if (rc > 0) {
            rend_ += static_cast<size_t>(rc);
            link_.progressed(monotonic_ms());
            return Io::ok;
        }
        int code = SSL_get_error(ssl_, rc);
        Io io;
        if (code == SSL_ERROR_WANT_READ) io = link_.wait_fd(socket_.get(), POLLIN, deadline, error);
        else if (code == SSL_ERROR_WANT_WRITE) io = link_.wait_fd(socket_.get(), POLLOUT, deadline, error);
        else {
            error = tls_error(rc, "reading the answer failed");
            return Io::failed;
        }
        if (io != Io::ok) {
            if (io == Io::failed) error = "waiting for the answer: " + error;
            return io;
        }
    }
}

// Whole lines, gzipped straight from the ring memory into out_ after the header room.
uint64_t HttpsTransport::add(const shm::ReadBatch& batch) {
    if (batch_raw_bytes_ == 0 && !batch_broken_) {
        deflateReset(&zs_);
        zs_.next_out = reinterpret_cast<Bytef*>(out_.get() + kHeaderRoom);
        zs_.avail_out = static_cast<uInt>(out_cap_ - kHeaderRoom);
        body_done_ = false;
    }
    batch_lines_ += batch.lines;
    batch_raw_bytes_ += batch.bytes();
    for (std::string_view span : batch.spans) {
        if (span.empty() || batch_broken_) continue;  // deflate cannot progress on no input (Z_BUF_ERROR)
        zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(span.data()));
        zs_.avail_in = static_cast<uInt>(span.size());
        if (deflate(&zs_, Z_NO_FLUSH) != Z_OK || zs_.avail_in != 0) {
            // Cannot happen: out_ holds deflateBound() of the largest batch.
            LOG_ERROR("destination %s: compressing a batch failed", text_.c_str());
            batch_broken_ = true;
        }
    }
    return confirmed_ + batch_raw_bytes_;
}

bool HttpsTransport::finish_body() {
    if (body_done_) return true;
    int rc = batch_broken_ ? Z_STREAM_ERROR : deflate(&zs_, Z_FINISH);
    if (rc != Z_STREAM_END) {
        // Cannot happen: out_ holds deflateBound() of the largest batch.
        LOG_ERROR("destination %s: compressing a batch failed (zlib %d)", text_.c_str(), rc);
        return false;
    }
    body_len_ = zs_.total_out;
    body_done_ = true;
    return true;
}

int HttpsTransport::post(std::string& error, bool& got_nothing, Io& io) {
    got_nothing = true;
    char header[kHeaderRoom];
    int hlen = std::snprintf(header, sizeof header,
                             "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: polymur/%s\r\nContent-Type: text/plain\r\n"
                             "Content-Encoding: gzip\r\nContent-Length: %zu\r\nX-Polymur-Lines: %llu\r\n\r\n",
                             path_.c_str(), authority_.c_str(), POLYMUR_VERSION, body_len_,
                             static_cast<unsigned long long>(batch_lines_));
    if (hlen <= 0 || static_cast<size_t>(hlen) >= sizeof header) {
        error = "request header too long";
        io = Io::failed;
        return 0;
    }
    char* request = out_.get() + kHeaderRoom - hlen;
    std::memcpy(request, header, static_cast<size_t>(hlen));
    const int64_t deadline =
        monotonic_ms() + static_cast<int64_t>(config_.request_timeout_s ? config_.request_timeout_s : 30) * 1000;
    io = write_all(request, static_cast<size_t>(hlen) + body_len_, deadline, error);
    if (io != Io::ok) return 0;

    response_.start();
    for (;;) {
        size_t used = 0;
        protocol::HttpResponseReader::Result result =
            response_.feed(std::string_view(rbuf_ + rstart_, rend_ - rstart_), used);
        rstart_ += used;
        if (result == protocol::HttpResponseReader::Result::done) break;
        if (result == protocol::HttpResponseReader::Result::error) {
            error = response_.error();
            io = Io::failed;
            return 0;
        }
        std::string fill_error;
        io = fill(deadline, fill_error);
        if (io != Io::ok) {
            // A body without a length ends when the gateway closes the connection.
            if (response_.reads_until_close() &&
                response_.end_of_stream() == protocol::HttpResponseReader::Result::done)
                break;
            error = std::move(fill_error);
            return 0;
        }
        got_nothing = false;
    }
    ++requests_on_connection_;
    if (response_.close_after()) disconnect(false);
    io = Io::ok;
    return response_.status();
}

Sent HttpsTransport::send(std::string& error) {
    if (!finish_body()) {
        reset();
        return Sent::smaller;  // read the lines again
    }
    for (int attempt = 0;; ++attempt) {
        if (ssl_ && idle_connection_closed()) disconnect(false);
        if (!ssl_) {
            Io io = open(error);
            if (io == Io::aborted) return Sent::aborted;
            if (io != Io::ok) return Sent::lost;
        }
        bool reused = requests_on_connection_ > 0;
        bool got_nothing = true;
        Io io = Io::ok;
        int status = post(error, got_nothing, io);
        if (io == Io::aborted) return Sent::aborted;
        if (status == 0) {
            disconnect(true);
            // A kept-alive connection the gateway closed just as we reused it: once more, at once.
            if (reused && got_nothing && attempt == 0) continue;
            return Sent::lost;
        }
        if (status == 200) {
            confirmed_ += batch_raw_bytes_;
            reset();
            return Sent::ok;
        }
        if (status == 413 && batch_limit_ > 1) {
            // The gateway's --max-body-bytes is below our --batch-bytes: gather smaller batches.
            uint64_t refused = batch_raw_bytes_;
            batch_limit_ = std::max<uint64_t>(batch_limit_ / 2, 1);
            reset();
            LOG_WARN(
                "destination %s: the gateway refused a batch of %llu bytes as too large (413); sending batches of at most "
                "%llu bytes from now on (check --batch-bytes against the gateway's --max-body-bytes)",
                text_.c_str(), static_cast<unsigned long long>(refused), static_cast<unsigned long long>(batch_limit_));
            return Sent::smaller;
        }
        std::string body;
        for (char c : response_.body()) body += (c >= 0x20 && c < 0x7f) ? c : ' ';
        while (!body.empty() && body.back() == ' ') body.pop_back();
        error = "the gateway answered " + std::to_string(status) + (body.empty() ? "" : " (" + body + ")");
        return Sent::refused;
    }
}

}  // namespace

std::unique_ptr<Transport> make_https_transport(OutputLink& link, const Config& config, const DestinationSpec& spec,
                                                std::string& error) {
    auto transport = std::make_unique<HttpsTransport>(link, config, spec);
    if (!transport->start(error)) return nullptr;
    return transport;
}

}  // namespace polymur
