// Output process of an https:// destination (a gateway; the proxy side of the HTTPS transport). It
// is the only consumer of the destination's queue: it gathers whole lines from the rings into a
// batch of up to --batch-bytes, gzips it and POSTs it to /ingest over TLS with this site's client
// certificate, and moves the rings' read positions past the batch only when the gateway answered
// 200 (it answers only after the lines are in its own queues). Anything else keeps the batch and
// sends it again, with capped exponential backoff, so a crash, kill, network failure or full
// gateway resends instead of losing (at least once).
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "protocol/http_response.hpp"
#include "shm/queue.hpp"
#include "shm/queue_reader.hpp"
#include "common/heritage.hpp"
#include "worker/queue_syncer.hpp"
#include "worker/tls.hpp"

namespace polymur {
namespace {

volatile sig_atomic_t g_stop = 0;
void on_stop_signal(int) { g_stop = 1; }

constexpr int kGzipLevel = 1;
constexpr int kIdleWaitMs = 100;
constexpr int kSliceMs = 100;              // longest sleep between heartbeats and stop checks
constexpr int64_t kBackoffStartMs = 100;
constexpr int64_t kBackoffCapMs = 10000;
constexpr int64_t kStillFailingLogMs = 60000;
constexpr size_t kHeaderRoom = 1024;       // request line and headers go right before the gzip body
constexpr size_t kReadBuffer = 16 * 1024;  // response status line, headers and (discarded) body

enum class Io { ok, failed, aborted };  // aborted: deldest, or the drain deadline passed

class HttpsOutput {
public:
    explicit HttpsOutput(const Heritage& heritage)
        : heritage_(heritage), config_(*heritage.config), slot_(heritage.control->destinations[heritage.index]) {}
    ~HttpsOutput();

    int run();

private:
    bool parse_url(std::string& error);
    bool setup_tls(std::string& error);
    bool connect_gateway(std::string& error);
    void disconnect(bool lost);
    bool idle_connection_closed();
    bool gather();
    void commit();
    // Sends the batch; returns the HTTP status, or 0 with `error` set (network, TLS, timeout).
    int post(std::string& error, bool& got_nothing, Io& io);
    Io wait_io(short events, int64_t deadline, std::string& error);
    Io write_all(const char* data, size_t len, int64_t deadline, std::string& error);
    Io fill(int64_t deadline, std::string& error);  // reads more into rbuf_; EOF is a failure
    std::string tls_error(int rc, const char* what);
    void failure(const std::string& what, bool link_down);
    void success();
    bool removed() const {
        return slot_.state.load(std::memory_order_acquire) != static_cast<uint32_t>(shm::SlotState::active);
    }
    bool must_abort(int64_t now) const { return removed() || (g_stop && drain_deadline_ms_ && now >= drain_deadline_ms_); }
    void set_state(shm::LinkState state) { slot_.link_state.store(static_cast<uint32_t>(state), std::memory_order_relaxed); }
    void beat(int64_t now) { slot_.heartbeat_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed); }
    void progressed(int64_t now) { slot_.progress_ms.store(static_cast<uint64_t>(now), std::memory_order_relaxed); }
    static void nap(int ms) {
        struct timespec pause {0, ms * 1000000L};
        nanosleep(&pause, nullptr);
    }

    const Heritage& heritage_;
    const Config& config_;
    shm::DestinationSlot& slot_;
    std::string text_;
    std::string host_, port_, authority_, path_;
    std::unique_ptr<shm::QueueFile> queue_;
    std::unique_ptr<shm::QueueReader> reader_;
    uint32_t first_ring_ = 0;         // rotates, so no ring waits behind the others

    // The batch in flight: kept (compressed) until the gateway answers 200.
    bool has_batch_ = false;
    std::vector<shm::ReadBatch> spans_;
    uint64_t batch_lines_ = 0;
    uint64_t batch_raw_bytes_ = 0;
    size_t body_len_ = 0;
    uint64_t batch_limit_ = 0;  // --batch-bytes, halved on 413
    std::unique_ptr<char[]> out_;  // kHeaderRoom + gzip body
    size_t out_cap_ = 0;
    z_stream zs_ {};
    bool zs_ready_ = false;

    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    UniqueFd socket_;
    uint64_t requests_on_connection_ = 0;
    bool ever_connected_ = false;
    char rbuf_[kReadBuffer];
    size_t rstart_ = 0, rend_ = 0;
    protocol::HttpResponseReader response_;

    uint64_t failures_ = 0;
    int64_t backoff_ms_ = 0;
    int64_t retry_at_ms_ = 0;
    int64_t streak_start_ms_ = 0;
    int64_t streak_logged_ms_ = 0;
    int64_t drain_deadline_ms_ = 0;
};

HttpsOutput::~HttpsOutput() {
    if (ssl_) SSL_free(ssl_);
    if (ctx_) SSL_CTX_free(ctx_);
    if (zs_ready_) deflateEnd(&zs_);
}

// https://host:port[/path]: POST to <path>/ingest (Polymur's proxy appends /ingest to -gateway).
bool HttpsOutput::parse_url(std::string& error) {
    net::HttpsUrl url;
    if (!net::parse_https_url(text_, url, error)) return false;
    host_ = std::move(url.host);
    port_ = std::move(url.port);
    authority_ = std::move(url.authority);
    path_ = std::move(url.path);
    return true;
}

bool HttpsOutput::setup_tls(std::string& error) {
    // Only the private CA: the gateway's certificate must chain to --ca-cert.
    ctx_ = new_tls_context(false, "client-cert", config_.client_cert, "client-key", config_.client_key, "ca-cert", config_.ca_cert, error);
    if (!ctx_) return false;
    SSL_CTX_set_mode(ctx_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    return true;
}

std::string HttpsOutput::tls_error(int rc, const char* what) {
    int code = SSL_get_error(ssl_, rc);
    std::string text = what;
    long verify = SSL_get_verify_result(ssl_);
    if (verify != X509_V_OK) return text + ": certificate verification failed: " + X509_verify_cert_error_string(verify);
    std::string queued = openssl_errors();
    if (!queued.empty()) return text + ": " + queued;
    if (code == SSL_ERROR_ZERO_RETURN || (code == SSL_ERROR_SYSCALL && errno == 0)) return text + ": connection closed by the gateway";
    if (code == SSL_ERROR_SYSCALL) return text + ": " + std::strerror(errno);
    return text + ": TLS error " + std::to_string(code);
}

bool HttpsOutput::connect_gateway(std::string& error) {
    set_state(shm::LinkState::connecting);
    const uint32_t connect_timeout_ms = heritage_.control->header.connect_timeout_ms.load(std::memory_order_relaxed);
    socket_ = net::connect_tcp(host_, port_, static_cast<int>(connect_timeout_ms), error);
    if (!socket_) {
        error = "connect failed: " + error;
        return false;
    }
    ssl_ = SSL_new(ctx_);
    if (!ssl_ || SSL_set_fd(ssl_, socket_.get()) != 1) {
        error = "cannot create a TLS session: " + openssl_errors();
        disconnect(false);
        return false;
    }
    // The gateway's certificate must name the host we connect to (SAN DNS name or IP address).
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host_.c_str(), ip) == 1 || inet_pton(AF_INET6, host_.c_str(), ip) == 1;
    if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host_.c_str()) != 1
              : (X509_VERIFY_PARAM_set1_host(param, host_.c_str(), 0) != 1 || SSL_set_tlsext_host_name(ssl_, host_.c_str()) != 1)) {
        error = "cannot set the expected host name: " + openssl_errors();
        disconnect(false);
        return false;
    }
    const int64_t deadline = monotonic_ms() + connect_timeout_ms;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_connect(ssl_);
        if (rc == 1) break;
        int code = SSL_get_error(ssl_, rc);
        Io io = Io::failed;
        if (code == SSL_ERROR_WANT_READ) io = wait_io(POLLIN, deadline, error);
        else if (code == SSL_ERROR_WANT_WRITE) io = wait_io(POLLOUT, deadline, error);
        else error = tls_error(rc, "TLS handshake failed");
        if (io != Io::ok) {
            if (io == Io::aborted) error = "stopping";
            else if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) error = "TLS handshake: " + error;
            disconnect(false);
            return false;
        }
    }
    requests_on_connection_ = 0;
    rstart_ = rend_ = 0;
    if (!ever_connected_)
        LOG_INFO("destination %s: connected (%s, %s)", text_.c_str(), SSL_get_version(ssl_), SSL_get_cipher_name(ssl_));
    ever_connected_ = true;
    set_state(shm::LinkState::connected);
    return true;
}

void HttpsOutput::disconnect(bool lost) {
    if (ssl_) {
        if (!lost) SSL_shutdown(ssl_);  // best effort close_notify; the socket is non-blocking
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    socket_.reset();
    rstart_ = rend_ = 0;
    if (lost) slot_.reconnects.fetch_add(1, std::memory_order_relaxed);
}

// Between requests the gateway sends nothing, except TLS 1.3 session tickets; anything readable
// beyond those means it closed the idle connection (its request timeout).
bool HttpsOutput::idle_connection_closed() {
    struct pollfd pfd {socket_.get(), POLLIN, 0};
    if (poll(&pfd, 1, 0) <= 0) return false;
    char byte;
    ERR_clear_error();
    int rc = SSL_read(ssl_, &byte, 1);
    if (rc <= 0 && SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ) return false;
    ERR_clear_error();
    return true;
}

Io HttpsOutput::wait_io(short events, int64_t deadline, std::string& error) {
    for (;;) {
        int64_t now = monotonic_ms();
        beat(now);
        if (must_abort(now)) return Io::aborted;
        if (now >= deadline) {
            error = "timed out";
            return Io::failed;
        }
        struct pollfd pfd {socket_.get(), events, 0};
        int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(kSliceMs, deadline - now)));
        if (rc > 0) return Io::ok;  // errors and hang-ups surface in the next SSL call
        if (rc < 0 && errno != EINTR) {
            error = std::strerror(errno);
            return Io::failed;
        }
    }
}

Io HttpsOutput::write_all(const char* data, size_t len, int64_t deadline, std::string& error) {
    while (len > 0) {
        ERR_clear_error();
        errno = 0;
        int rc = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(len, 1u << 30)));
        if (rc > 0) {
            data += rc;
            len -= static_cast<size_t>(rc);
            progressed(monotonic_ms());
            continue;
        }
        int code = SSL_get_error(ssl_, rc);
        Io io;
        if (code == SSL_ERROR_WANT_WRITE) io = wait_io(POLLOUT, deadline, error);
        else if (code == SSL_ERROR_WANT_READ) io = wait_io(POLLIN, deadline, error);
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

Io HttpsOutput::fill(int64_t deadline, std::string& error) {
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
            progressed(monotonic_ms());
            return Io::ok;
        }
        int code = SSL_get_error(ssl_, rc);
        Io io;
        if (code == SSL_ERROR_WANT_READ) io = wait_io(POLLIN, deadline, error);
        else if (code == SSL_ERROR_WANT_WRITE) io = wait_io(POLLOUT, deadline, error);
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

// Whole lines from the rings, at most batch_limit_ bytes (one longer line goes alone), gzipped
// straight from the ring memory into out_ after the header room.
bool HttpsOutput::gather() {
    spans_.clear();
    batch_lines_ = batch_raw_bytes_ = 0;
    deflateReset(&zs_);
    zs_.next_out = reinterpret_cast<Bytef*>(out_.get() + kHeaderRoom);
    zs_.avail_out = static_cast<uInt>(out_cap_ - kHeaderRoom);
    const uint32_t rings = reader_->ring_count();
    shm::ReadBatch batch;
    for (uint32_t k = 0; k < rings && batch_raw_bytes_ < batch_limit_; ++k) {
        uint32_t i = (first_ring_ + k) % rings;
        // A line longer than the whole batch limit goes alone; after other lines, the next batch takes it.
        if (!reader_->read(i, batch_limit_ - batch_raw_bytes_, batch, batch_raw_bytes_ == 0)) continue;
        for (std::string_view span : batch.spans) {
            if (span.empty()) continue;  // deflate cannot progress on no input (Z_BUF_ERROR)
            zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(span.data()));
            zs_.avail_in = static_cast<uInt>(span.size());
            if (deflate(&zs_, Z_NO_FLUSH) != Z_OK || zs_.avail_in != 0) {
                // Cannot happen: out_ holds deflateBound() of the largest batch.
                LOG_ERROR("destination %s: compressing a batch failed", text_.c_str());
                spans_.clear();
                reader_->rewind();
                return false;
            }
        }
        spans_.push_back(batch);
        batch_lines_ += batch.lines;
        batch_raw_bytes_ += batch.bytes();
    }
    first_ring_ = (first_ring_ + 1) % rings;
    if (spans_.empty()) return false;
    int rc = deflate(&zs_, Z_FINISH);
    if (rc != Z_STREAM_END) {
        // Cannot happen: out_ holds deflateBound() of the largest batch.
        LOG_ERROR("destination %s: compressing a batch failed (zlib %d)", text_.c_str(), rc);
        spans_.clear();
        reader_->rewind();
        return false;
    }
    body_len_ = zs_.total_out;
    has_batch_ = true;
    return true;
}

void HttpsOutput::commit() {
    for (const shm::ReadBatch& s : spans_) reader_->commit(s);
    slot_.sent_lines.fetch_add(batch_lines_, std::memory_order_relaxed);
    slot_.sent_bytes.fetch_add(batch_raw_bytes_, std::memory_order_relaxed);
    spans_.clear();
    has_batch_ = false;
}

int HttpsOutput::post(std::string& error, bool& got_nothing, Io& io) {
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
    const int64_t deadline = monotonic_ms() + static_cast<int64_t>(config_.request_timeout_s ? config_.request_timeout_s : 30) * 1000;
    io = write_all(request, static_cast<size_t>(hlen) + body_len_, deadline, error);
    if (io != Io::ok) return 0;

    response_.start();
    for (;;) {
        size_t used = 0;
        protocol::HttpResponseReader::Result result = response_.feed(std::string_view(rbuf_ + rstart_, rend_ - rstart_), used);
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
            if (response_.reads_until_close() && response_.end_of_stream() == protocol::HttpResponseReader::Result::done) break;
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

void HttpsOutput::failure(const std::string& what, bool link_down) {
    int64_t now = monotonic_ms();
    ++failures_;
    slot_.consecutive_failures.store(failures_, std::memory_order_relaxed);
    if (link_down) set_state(shm::LinkState::down);
    backoff_ms_ = backoff_ms_ ? std::min(backoff_ms_ * 2, kBackoffCapMs) : kBackoffStartMs;
    retry_at_ms_ = now + backoff_ms_;
    if (failures_ == 1) {
        streak_start_ms_ = streak_logged_ms_ = now;
        char kept[96] = "nothing queued yet";
        if (has_batch_)
            std::snprintf(kept, sizeof kept, "keeping the batch of %llu lines and every line behind it",
                          static_cast<unsigned long long>(batch_lines_));
        LOG_WARN("destination %s: %s; %s, retrying (backoff from %lld ms up to %lld s)", text_.c_str(), what.c_str(), kept,
                 static_cast<long long>(kBackoffStartMs), static_cast<long long>(kBackoffCapMs / 1000));
    } else if (now - streak_logged_ms_ >= kStillFailingLogMs) {
        streak_logged_ms_ = now;
        LOG_WARN("destination %s: still failing after %llu attempts in %lld s (%llu lines queued): %s", text_.c_str(),
                 static_cast<unsigned long long>(failures_), static_cast<long long>((now - streak_start_ms_) / 1000),
                 static_cast<unsigned long long>(queue_->queued_lines()), what.c_str());
    }
}

void HttpsOutput::success() {
    if (failures_) {
        LOG_NOTICE("destination %s: %s after %llu failed attempts in %.1f s", text_.c_str(),
                   has_batch_ ? "delivering again" : "connected", static_cast<unsigned long long>(failures_),
                   static_cast<double>(monotonic_ms() - streak_start_ms_) / 1000.0);
    }
    failures_ = 0;
    backoff_ms_ = 0;
    retry_at_ms_ = 0;
    slot_.consecutive_failures.store(0, std::memory_order_relaxed);
    set_state(shm::LinkState::connected);
}

int HttpsOutput::run() {
    text_.assign(slot_.text, strnlen(slot_.text, sizeof slot_.text));
    std::string error;
    if (!parse_url(error)) {
        LOG_ERROR("destination %s: %s", text_.c_str(), error.c_str());
        return kExitDoNotRestart;
    }
    UniqueFd lock;
    int exit_code = 0;
    queue_ = attach_output_queue(heritage_, text_, lock, exit_code);
    if (!queue_) return exit_code;
    QueueSyncer syncer(*queue_, lock.get(), config_.sync_interval_s, text_);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    reader_ = std::make_unique<shm::QueueReader>(*queue_);
    spans_.reserve(queue_->ring_count());

    if (!setup_tls(error)) {
        LOG_ERROR("destination %s: %s", text_.c_str(), error.c_str());
        return kExitDoNotRestart;
    }
    if (deflateInit2(&zs_, kGzipLevel, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        LOG_ERROR("destination %s: cannot initialise zlib", text_.c_str());
        return kExitCrashed;
    }
    zs_ready_ = true;
    batch_limit_ = std::max<uint64_t>(config_.batch_bytes, 1);
    // The largest batch: the limit, or one line longer than it. Lines are bounded by what any
    // producer may write, not by this run's --max-line-length: the queue may be older.
    uint64_t largest = std::max<uint64_t>(batch_limit_, shm::kMaxQueuedLine);
    out_cap_ = kHeaderRoom + deflateBound(&zs_, static_cast<uLong>(largest)) + 64;
    out_.reset(new char[out_cap_]);

    for (;;) {
        int64_t now = monotonic_ms();
        beat(now);
        // deldest: the other destinations have their own copies (an HTTPS destination is a mirror).
        if (removed()) break;
        if (g_stop) {
            if (!drain_deadline_ms_) drain_deadline_ms_ =
                now + static_cast<int64_t>(heritage_.control->header.drain_timeout_s.load(std::memory_order_relaxed)) * 1000;
            // Deliver until the queue is empty or the deadline; a failing gateway keeps it all.
            if (now >= drain_deadline_ms_ || failures_ || (!has_batch_ && reader_->caught_up())) break;
        }
        if (!has_batch_) gather();
        // Connect at start even with nothing to send, so a certificate or network problem shows at
        // once; later, only to send (the gateway closes idle connections).
        if (!has_batch_ && (ever_connected_ || g_stop)) {
            progressed(now);
            reader_->wait(kIdleWaitMs, [&] { return !g_stop && !removed(); });
            continue;
        }
        if (now < retry_at_ms_) {
            // Waiting out a backoff is not a stall: nothing is in flight.
            progressed(now);
            nap(static_cast<int>(std::min<int64_t>(kSliceMs, retry_at_ms_ - now)));
            continue;
        }
        if (ssl_ && idle_connection_closed()) disconnect(false);
        if (!ssl_ && !connect_gateway(error)) {
            if (must_abort(monotonic_ms())) continue;
            slot_.reconnects.fetch_add(1, std::memory_order_relaxed);  // every failed attempt counts
            failure(error, true);
            continue;
        }
        if (!has_batch_) {
            success();  // the first connection, made before there was anything to send
            continue;
        }
        bool reused = requests_on_connection_ > 0;
        bool got_nothing = true;
        Io io = Io::ok;
        int status = post(error, got_nothing, io);
        if (io == Io::aborted) continue;  // the loop head stops
        if (status == 0) {
            disconnect(true);
            // A kept-alive connection the gateway closed just as we reused it: once more, at once.
            if (reused && got_nothing) continue;
            failure(error, true);
            continue;
        }
        if (status == 200) {
            progressed(monotonic_ms());
            success();
            commit();
            continue;
        }
        if (status == 413 && batch_limit_ > 1) {
            // The gateway's --max-body-bytes is below our --batch-bytes: gather smaller batches.
            batch_limit_ = std::max<uint64_t>(batch_limit_ / 2, 1);
            has_batch_ = false;
            reader_->rewind();
            LOG_WARN("destination %s: the gateway refused a batch of %llu bytes as too large (413); sending batches of at most "
                     "%llu bytes from now on (check --batch-bytes against the gateway's --max-body-bytes)", text_.c_str(),
                     static_cast<unsigned long long>(batch_raw_bytes_), static_cast<unsigned long long>(batch_limit_));
            continue;
        }
        std::string body;
        for (char c : response_.body()) body += (c >= 0x20 && c < 0x7f) ? c : ' ';
        while (!body.empty() && body.back() == ' ') body.pop_back();
        failure("the gateway answered " + std::to_string(status) + (body.empty() ? "" : " (" + body + ")"), false);
    }
    disconnect(false);
    set_state(shm::LinkState::stopped);
    uint64_t left = queue_->queued_lines();
    if (left && !removed())
        LOG_INFO("destination %s: output stopping with %llu lines queued (kept in %s)", text_.c_str(),
                 static_cast<unsigned long long>(left), queue_->path().c_str());
    return 0;
}

}  // namespace

int run_https_output(const Heritage& heritage) {
    HttpsOutput output(heritage);
    return output.run();
}

}  // namespace polymur
