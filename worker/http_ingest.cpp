// The HTTP(S) ingest endpoint of a listener worker. Every listener worker serves the shared listening
// socket with its own evhttp; a request is answered only after its lines are in the destination
// queues (200) or refused as a whole (503), so a proxy that retries until 200 loses nothing.
//
// Authentication on the TLS listener is OpenSSL's certificate verification and nothing else: a
// client without a certificate chaining to --ca-cert, or whose certificate is expired or listed in
// --crl, fails the handshake and never reaches a handler. The certificate's subject CN is the
// client's namespace (the metric prefix with --key-prefix).
#include "worker/http_ingest.hpp"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "common/cidr.hpp"
#include "common/clock.hpp"
#include "common/guard.hpp"
#include "common/http_accept_pause.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/rate_limited_log.hpp"
#include "protocol/gzip_body.hpp"
#include "protocol/ingest_request.hpp"
#include "worker/http_connections.hpp"
#include "worker/tls.hpp"

namespace polymur {
namespace {

constexpr size_t kNamespaceMax = 128;
constexpr size_t kKeepBodyBuffer = 4u << 20;  // a larger decompression buffer is released after use

// For log lines: printable ASCII, at most `max` characters.
std::string shown(std::string_view text, size_t max = 80) {
    std::string out;
    for (unsigned char c : text.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    if (text.size() > max) out += "...";
    return out;
}

// A namespace becomes the first component of metric names, and exactly one: letters, digits, '_',
// '-' and --namespace-extra-chars, never '.', so no tenant's metrics can land inside another's
// namespace ("a.b" + "c" would be "a" + "b.c"), and never a Graphite glob or anything outside ASCII.
bool valid_namespace(std::string_view ns, std::string_view extra) {
    if (ns.empty() || ns.size() > kNamespaceMax) return false;
    for (unsigned char c : ns) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
            (c > 0x20 && c < 0x7f && extra.find(static_cast<char>(c)) != std::string_view::npos);
        if (!ok) return false;
    }
    return true;
}

enum class CnResult { ok, missing, ambiguous, unreadable };

// The subject CN of `cert` as UTF-8.
CnResult subject_cn(X509* cert, std::string& out) {
    X509_NAME* subject = X509_get_subject_name(cert);
    if (!subject) return CnResult::missing;
    int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (index < 0) return CnResult::missing;
    if (X509_NAME_get_index_by_NID(subject, NID_commonName, index) >= 0) return CnResult::ambiguous;
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0 || !utf8) return CnResult::unreadable;
    out.assign(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    // An embedded NUL would make the CN mean different things to different readers.
    if (out.find('\0') != std::string::npos) return CnResult::unreadable;
    return CnResult::ok;
}

struct Counts {
    uint64_t requests = 0, accepted = 0, lines = 0, invalid_lines = 0, busy = 0, bad = 0, too_large = 0, forbidden = 0,
             not_found = 0, bad_method = 0, failed = 0, pings = 0, tls_refused = 0, forwarded = 0;
    bool operator==(const Counts&) const = default;
};

class Ingest final : public HttpIngest {
public:
    Ingest(struct event_base* base, bool tls, const Config& config, LineSink& sink)
            : base_(base), tls_(tls), config_(config), sink_(sink), scheme_(tls ? "HTTPS" : "HTTP") {}
    ~Ingest() override;

    bool start(int fd, std::string& error);

private:
    bool make_tls_context(std::string& error);
    static struct bufferevent* on_new_connection(struct event_base* base, void* self);
    static void on_request(struct evhttp_request* req, void* self);
    static void on_summary(evutil_socket_t, short, void* self) {
        guarded("ingest: summary", [&] { static_cast<Ingest*>(self)->summary(); });
    }
    static void on_tls_info(const SSL* ssl, int where, int value);
    static void tls_info(const SSL* ssl, int where, int value);
    void handle(struct evhttp_request* req);
    void ingest(struct evhttp_request* req, const std::string& client, const std::string& ns);
    protocol::GzipBody::Result inflate_body(struct evbuffer* body);
    void reply(struct evhttp_request* req, int code, const char* reason, const char* format, ...)
        __attribute__((format(printf, 5, 6)));
    void note_forwarded(const std::string& peer, const char* xff);
    std::string extra_chars_note() const {
        return config_.namespace_extra_chars.empty() ? "" : " or any of '" + config_.namespace_extra_chars + "'";
    }
    void summary();

    struct event_base* base_;
    bool tls_;
    const Config& config_;
    LineSink& sink_;
    const char* scheme_;
    struct evhttp* http_ = nullptr;
    SSL_CTX* ctx_ = nullptr;
    struct event* summary_event_ = nullptr;
    struct evconnlistener* listener_ = nullptr;  // evhttp's, freed with http_
    std::unique_ptr<HttpAcceptPause> accept_pause_;
    std::vector<Cidr> trusted_;
    protocol::GzipBody body_;  // the decompressed request body, at most --max-body-bytes
    std::vector<struct evbuffer_iovec> iovecs_;
    std::vector<std::string_view> chunks_;
    std::vector<protocol::HttpHeader> header_list_;
    Counts counts_, reported_;
    RateLimitedLog refused_log_, tls_log_, invalid_log_;
    std::unique_ptr<HttpConnectionGuard> guard_;
    HttpConnectionGuard::Counts guard_reported_;
    uint64_t forwarded_unlogged_ = 0;
    int64_t forwarded_logged_ms_ = 0;
};

int g_handshake_done_index = -1;  // SSL ex_data: set once the handshake completed

Ingest::~Ingest() {
    accept_pause_.reset();
    if (summary_event_) event_free(summary_event_);
    if (http_) evhttp_free(http_);
    guard_.reset();
    if (ctx_) SSL_CTX_free(ctx_);
}

bool Ingest::make_tls_context(std::string& error) {
    ctx_ = new_tls_server_context("cert", config_.cert, "key", config_.key, "ca-cert", config_.ca_cert, error);
    if (!ctx_) return false;
    SSL_CTX_set_options(ctx_, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    // No session resumption: every connection presents and proves its certificate, checked
    // against the CRL loaded now.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx_, 0);
    STACK_OF(X509_NAME)* client_cas = SSL_load_client_CA_file(config_.ca_cert.c_str());
    if (!client_cas) {
        error = "--ca-cert " + config_.ca_cert + ": no CA certificate in it";
        return false;
    }
    SSL_CTX_set_client_CA_list(ctx_, client_cas);
    if (!config_.crl.empty()) {
        X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
        X509_LOOKUP* lookup = X509_STORE_add_lookup(store, X509_LOOKUP_file());
        if (!lookup || X509_load_crl_file(lookup, config_.crl.c_str(), X509_FILETYPE_PEM) <= 0) {
            error = "--crl " + config_.crl + ": " + openssl_errors();
            return false;
        }
        X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    }
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    SSL_CTX_set_verify_depth(ctx_, 8);
    if (g_handshake_done_index < 0)
        g_handshake_done_index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    SSL_CTX_set_info_callback(ctx_, &Ingest::on_tls_info);
    SSL_CTX_set_app_data(ctx_, this);  // the info callback finds its endpoint through the context it belongs to
    return true;
}

// A handshake that ends with an alert from us: no certificate, an unknown CA, expired, revoked...
void Ingest::on_tls_info(const SSL* ssl, int where, int value) {
    guarded("ingest: TLS", [&] { tls_info(ssl, where, value); });  // called from OpenSSL's C code
}

void Ingest::tls_info(const SSL* ssl, int where, int value) {
    if (where & SSL_CB_HANDSHAKE_DONE) {
        if (g_handshake_done_index >= 0)
            SSL_set_ex_data(const_cast<SSL*>(ssl), g_handshake_done_index, const_cast<char*>("done"));
        return;
    }
    auto* ingest = static_cast<Ingest*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
    if (!(where & SSL_CB_ALERT) || !ingest) return;
    if (SSL_alert_type_string(value)[0] != 'F') return;  // warnings (close_notify) are not refusals
    // A connection closed before it sent anything (a TCP health check) is not a refused client.
    BIO* rbio = SSL_get_rbio(ssl);
    if (!rbio || BIO_number_read(rbio) == 0) return;
    // After the handshake, an alert is about the connection (a client that left without
    // close_notify), not about who it is.
    if (g_handshake_done_index >= 0 && SSL_get_ex_data(ssl, g_handshake_done_index)) return;
    Ingest& self = *ingest;
    const bool ours = where & SSL_CB_WRITE;
    ++self.counts_.tls_refused;
    long verify = ours ? SSL_get_verify_result(ssl) : X509_V_OK;
    int fd = SSL_get_fd(ssl);
    std::string peer = fd >= 0 ? net::peer_name(fd) : "unknown";
    if (peer == "unknown") peer = "(address gone)";
    int alert_code = value & 0xff;
    // OpenSSL 3.0 has no long name for TLS 1.3's certificate_required.
    const char* alert = alert_code == 116 ? "certificate required" : SSL_alert_desc_string_long(value);
    self.tls_log_.event(
        [&](unsigned long long held) {
            if (ours)
                LOG_WARN("TLS client %s: handshake refused (%s%s%s) (%llu more for this reason since the last report)",
                         peer.c_str(), alert, verify != X509_V_OK ? ": " : "",
                         verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "", held);
            else
                LOG_WARN(
                    "TLS client %s: the client gave up the handshake (alert: %s; does it trust our --cert and does it "
                    "name this host?) (%llu more for this reason since the last report)",
                    peer.c_str(), alert, held);
        },
        (ours ? 1 : -1) * (alert_code * 1000 + verify));
}

bool Ingest::start(int fd, std::string& error) {
    if (!parse_cidrs(config_.trusted_proxies, trusted_, error)) {
        error = "--trusted-proxies " + error;
        return false;
    }
    if (tls_ && !make_tls_context(error)) return false;
    if (!body_.init()) {
        error = "cannot initialise zlib";
        return false;
    }
    http_ = evhttp_new(base_);
    if (!http_) {
        error = "cannot create the HTTP server";
        return false;
    }
    // The compressed body may not be larger than the decompressed limit (plus gzip's worst-case
    // overhead for incompressible data); evhttp answers 413 to a larger Content-Length itself.
    uint64_t compressed_max = config_.max_body_bytes + config_.max_body_bytes / 1000 + 4096;
    evhttp_set_max_body_size(http_, static_cast<ev_ssize_t>(compressed_max));
    evhttp_set_max_headers_size(http_, 64 * 1024);
    evhttp_set_timeout(http_, static_cast<int>(config_.request_timeout_s ? config_.request_timeout_s : 1));
    // Read what the client still sends before closing, so it sees a 413 instead of a reset.
    evhttp_set_flags(http_, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_allowed_methods(http_,
                               EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                   EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http_, "text/plain; charset=utf-8");
    evhttp_set_gencb(http_, &Ingest::on_request, this);
    HttpConnectionGuard::Limits limits;
    limits.request_ms = static_cast<int64_t>(config_.request_timeout_s ? config_.request_timeout_s : 1) * 1000;
    limits.handshake_ms = static_cast<int64_t>(config_.handshake_timeout_s ? config_.handshake_timeout_s : 1) * 1000;
    limits.bodies_in_flight = config_.max_bodies_in_flight;
    limits.max_request_bytes = compressed_max;
    guard_ = std::make_unique<HttpConnectionGuard>(base_, limits, tls_);
    evhttp_set_bevcb(http_, &Ingest::on_new_connection, this);
    struct evhttp_bound_socket* bound = evhttp_accept_socket_with_handle(http_, fd);
    if (!bound) {
        error = "cannot accept on the listening socket";
        return false;
    }
    listener_ = evhttp_bound_socket_get_listener(bound);
    // Out of descriptors, the listener pauses 100 ms at a time rather than retrying at once (a core at 100 %).
    accept_pause_ = std::make_unique<HttpAcceptPause>(base_, http_, listener_, std::string(scheme_) + " ingest",
                                                      [this] { evconnlistener_enable(listener_); });
    if (!accept_pause_->ok()) {
        error = "cannot set up the listener's pause";
        return false;
    }
    summary_event_ = event_new(base_, -1, EV_PERSIST, &Ingest::on_summary, this);
    struct timeval interval = {static_cast<time_t>(config_.stats_interval_s ? config_.stats_interval_s : 5), 0};
    event_add(summary_event_, &interval);
    return true;
}

struct bufferevent* Ingest::on_new_connection(struct event_base* base, void* self_ptr) {
    auto* self = static_cast<Ingest*>(self_ptr);
    if (!self->tls_) {
        struct bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (bev) self->guard_->track(bev);
        return bev;
    }
    SSL* ssl = SSL_new(self->ctx_);
    if (!ssl) {
        // evhttp falls back to a plain bufferevent; handle() refuses every request on it.
        LOG_ERROR("%s: cannot create a TLS session: %s", self->scheme_, openssl_errors().c_str());
        return nullptr;
    }
    struct bufferevent* bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev) {
        SSL_free(ssl);
        LOG_ERROR("%s: cannot create a TLS connection", self->scheme_);
        return nullptr;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    self->guard_->track(bev);
    return bev;
}

void Ingest::on_request(struct evhttp_request* req, void* self_ptr) {
    auto* self = static_cast<Ingest*>(self_ptr);
    // Nothing may unwind through libevent: a request that fails unexpectedly is answered 500.
    if (!guarded(self->scheme_, [&] { self->handle(req); })) {
        ++self->counts_.failed;
        evhttp_send_error(req, HTTP_INTERNAL, "Internal Server Error");
    }
}

void Ingest::reply(struct evhttp_request* req, int code, const char* reason, const char* format, ...) {
    struct evbuffer* body = evbuffer_new();
    if (body) {
        va_list args;
        va_start(args, format);
        evbuffer_add_vprintf(body, format, args);
        va_end(args);
    }
    struct evkeyvalq* headers = evhttp_request_get_output_headers(req);
    if (code == 503) evhttp_add_header(headers, "Retry-After", "1");
    if (code == 405) evhttp_add_header(headers, "Allow", "GET, POST");
    evhttp_send_reply(req, code, reason, body);
    if (body) evbuffer_free(body);
}

void Ingest::note_forwarded(const std::string& peer, const char* xff) {
    ++counts_.forwarded;
    int64_t now = monotonic_ms();
    if (forwarded_logged_ms_ && now - forwarded_logged_ms_ < 1000) {
        ++forwarded_unlogged_;
        return;
    }
    LOG_INFO("%s client %s: request forwarded for %s (%llu more forwarded requests since the last report)", scheme_,
             peer.c_str(), shown(xff, 200).c_str(), static_cast<unsigned long long>(forwarded_unlogged_));
    forwarded_unlogged_ = 0;
    forwarded_logged_ms_ = now;
}

void Ingest::handle(struct evhttp_request* req) {
    ++counts_.requests;
    struct evhttp_connection* conn = evhttp_request_get_connection(req);
    // The whole request is here: from now on its deadline and its share of the in-flight bound end.
    if (struct bufferevent* bev = conn ? evhttp_connection_get_bufferevent(conn) : nullptr) guard_->request_done(bev);
    const struct sockaddr* peer_addr = conn ? evhttp_connection_get_addr(conn) : nullptr;
    std::string peer = "unknown";
    if (conn) {
        char* host = nullptr;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(conn, &host, &port);
        if (host)
            peer = (std::strchr(host, ':') ? "[" + std::string(host) + "]" : std::string(host)) + ":" +
                std::to_string(port);
    }
    // The answer is small and written in pieces (TLS records): without TCP_NODELAY, Nagle holds
    // the last piece until the client's delayed ACK, 40 ms per batch.
    if (struct bufferevent* bev = conn ? evhttp_connection_get_bufferevent(conn) : nullptr) {
        int fd = bufferevent_getfd(bev);
        int one = 1;
        if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    struct evkeyvalq* headers = evhttp_request_get_input_headers(req);
    // `kind`: refusals of one kind are logged at most once a second, each kind on its own.
    auto refuse = [&](int code, const char* reason, const std::string& why, long kind = 0) {
        ++(code == 403 ? counts_.forbidden : counts_.bad);
        refused_log_.event(
            [&](unsigned long long held) {
                LOG_WARN("%s client %s: request refused with %d: %s (%llu more refused since the last report)", scheme_,
                         peer.c_str(), code, why.c_str(), held);
            },
            kind);
        reply(req, code, reason, "%s\n", why.c_str());
    };
    header_list_.clear();
    for (struct evkeyval* h = headers->tqh_first; h; h = h->next.tqe_next) header_list_.push_back({h->key, h->value});
    const protocol::IngestHeaders checked =
        protocol::check_ingest_headers(header_list_.data(), header_list_.size(), config_.namespace_header);
    if (checked.status) {
        refuse(checked.status, "Bad Request", checked.why);
        return;
    }

    // Who is asking: the verified certificate (TLS) or a trusted proxy's header (plain HTTP).
    std::string ns;
    if (tls_) {
        struct bufferevent* bev = conn ? evhttp_connection_get_bufferevent(conn) : nullptr;
        SSL* ssl = bev ? bufferevent_openssl_get_ssl(bev) : nullptr;
        X509* cert = ssl ? SSL_get0_peer_certificate(ssl) : nullptr;
        if (!cert || SSL_get_verify_result(ssl) != X509_V_OK) {
            refuse(403, "Forbidden", "no verified client certificate");
            return;
        }
        std::string cn;
        CnResult got = subject_cn(cert, cn);
        if (got == CnResult::ok && valid_namespace(cn, config_.namespace_extra_chars)) {
            ns = std::move(cn);
        } else if (config_.key_prefix) {
            refuse(403, "Forbidden",
                   got == CnResult::missing         ? "the client certificate has no subject CN to use as the namespace"
                       : got == CnResult::ambiguous ? "the client certificate has more than one subject CN"
                       : got == CnResult::unreadable ? "the client certificate's subject CN is not readable"
                                                     : "the client certificate's subject CN '" + shown(cn) +
                           "' is not usable as a namespace "
                           "(one name component: letters, digits, '_', '-'" +
                           extra_chars_note() + ", at most " + std::to_string(kNamespaceMax) + ")");
            return;
        }
    } else {
        if (checked.has_namespace) {
            const std::string header(checked.namespace_value);
            if (!any_cidr_contains(trusted_, peer_addr)) {
                refuse(403, "Forbidden", config_.namespace_header + " from an address outside --trusted-proxies");
                return;
            }
            if (!valid_namespace(header, config_.namespace_extra_chars)) {
                refuse(403, "Forbidden",
                       config_.namespace_header + " '" + shown(header) +
                           "' is not usable as a namespace "
                           "(one name component: letters, digits, '_', '-'" +
                           extra_chars_note() + ", at most " + std::to_string(kNamespaceMax) + ")");
                return;
            }
            ns = header;
        } else if (config_.key_prefix) {
            // Without a namespace the batch would land unprefixed, among every tenant's metrics.
            refuse(403, "Forbidden",
                   "with --key-prefix every request needs a namespace: " + config_.namespace_header +
                       " from an address inside --trusted-proxies",
                   1);
            return;
        }
    }
    if (const char* xff = evhttp_find_header(headers, "X-Forwarded-For")) note_forwarded(peer, xff);
    std::string client = ns.empty() ? peer : ns + " (" + peer + ")";

    const struct evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
    const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
    std::string_view route = path ? path : "";
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (route == "/ingest") {
        if (method != EVHTTP_REQ_POST) {
            ++counts_.bad_method;
            reply(req, 405, "Method Not Allowed", "POST a gzip batch of lines to /ingest\n");
            return;
        }
        ingest(req, client, ns);
        return;
    }
    if (route == "/ping") {
        // Polymur's proxy POSTs /ping; GET is for people.
        if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_POST && method != EVHTTP_REQ_HEAD) {
            ++counts_.bad_method;
            reply(req, 405, "Method Not Allowed", "GET /ping\n");
            return;
        }
        ++counts_.pings;
        reply(req, 200, "OK", "pong%s%s\n", ns.empty() ? "" : " ", ns.c_str());
        return;
    }
    ++counts_.not_found;
    reply(req, 404, "Not Found", "not found: POST /ingest or GET /ping\n");
}

void Ingest::ingest(struct evhttp_request* req, const std::string& client, const std::string& ns) {
    auto refuse = [&](int code, const char* reason, const char* why) {
        ++(code == 413 ? counts_.too_large : counts_.bad);
        refused_log_.event([&](unsigned long long held) {
            LOG_WARN("%s client %s: batch refused with %d: %s (%llu more refused since the last report)", scheme_,
                     client.c_str(), code, why, held);
        });
        reply(req, code, reason, "%s\n", why);
    };
    protocol::GzipBody::Result result = inflate_body(evhttp_request_get_input_buffer(req));
    if (result == protocol::GzipBody::Result::not_gzip) {
        refuse(400, "Bad Request", "the body is not a complete gzip stream");
        return;
    }
    if (result == protocol::GzipBody::Result::too_large) {
        char why[96];
        std::snprintf(why, sizeof why, "the batch is larger than %llu bytes decompressed",
                      static_cast<unsigned long long>(config_.max_body_bytes));
        refuse(413, "Payload Too Large", why);
        return;
    }
    if (result == protocol::GzipBody::Result::no_memory) {
        ++counts_.busy;
        LOG_ERROR("%s client %s: no memory to decompress a batch; answered 503", scheme_, client.c_str());
        reply(req, 503, "Service Unavailable", "no memory now; retry\n");
        return;
    }
    IngestOutcome outcome = sink_.ingest(body_.text(), config_.key_prefix ? ns : std::string_view());
    body_.shrink_to(kKeepBodyBuffer);
    // Which queue could not take the batch: a destination's, or the aggregator's (its aggregate rules' points).
    const char* queue = outcome.aggregator ? "the aggregator's queue" : "the destination queues";
    if (!outcome.accepted && outcome.never_fits) {
        ++counts_.too_large;
        LOG_WARN("%s client %s: batch of %llu lines is larger than %s can ever hold; answered 413", scheme_,
                 client.c_str(), static_cast<unsigned long long>(outcome.valid), queue);
        reply(req, 413, "Payload Too Large", "batch larger than %s; send smaller batches\n", queue);
        return;
    }
    if (!outcome.accepted) {
        ++counts_.busy;
        refused_log_.event([&](unsigned long long held) {
            LOG_WARN(
                "%s client %s: batch of %llu lines refused with 503: %s full (%llu more refused since the last "
                "report)",
                scheme_, client.c_str(), static_cast<unsigned long long>(outcome.valid), queue, held);
        });
        reply(req, 503, "Service Unavailable", "queues full; retry\n");
        return;
    }
    ++counts_.accepted;
    counts_.lines += outcome.valid;
    counts_.invalid_lines += outcome.invalid;
    if (outcome.invalid) {
        invalid_log_.event([&](unsigned long long held) {
            LOG_WARN(
                "%s client %s: %llu invalid lines dropped from a batch of %llu (%llu more batches with invalid lines since "
                "the last report)",
                scheme_, client.c_str(), static_cast<unsigned long long>(outcome.invalid),
                static_cast<unsigned long long>(outcome.valid + outcome.invalid), held);
        });
    }
    reply(req, 200, "OK", "accepted %llu, invalid %llu\n", static_cast<unsigned long long>(outcome.valid),
          static_cast<unsigned long long>(outcome.invalid));
}

// The request body as it lies in libevent's buffer, decompressed into body_ (protocol/gzip_body).
protocol::GzipBody::Result Ingest::inflate_body(struct evbuffer* body) {
    int n = evbuffer_peek(body, -1, nullptr, nullptr, 0);
    if (n <= 0) return protocol::GzipBody::Result::not_gzip;
    iovecs_.resize(static_cast<size_t>(n));
    evbuffer_peek(body, -1, nullptr, iovecs_.data(), n);
    chunks_.clear();
    for (const struct evbuffer_iovec& v : iovecs_)
        chunks_.emplace_back(static_cast<const char*>(v.iov_base), v.iov_len);
    return body_.decode(chunks_.data(), chunks_.size(), static_cast<size_t>(config_.max_body_bytes));
}

void Ingest::summary() {
    const HttpConnectionGuard::Counts& guarded = guard_->counts();
    if (counts_ == reported_ && guarded == guard_reported_) return;
    const Counts& now = counts_;
    std::string text;
    auto part = [&](uint64_t value, uint64_t before, const char* what) {
        if (value == before) return;
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%llu %s", text.empty() ? "" : ", ",
                      static_cast<unsigned long long>(value - before), what);
        text += buf;
    };
    part(now.requests, reported_.requests, "requests");
    part(now.accepted, reported_.accepted, "batches accepted");
    part(now.lines, reported_.lines, "lines queued");
    part(now.invalid_lines, reported_.invalid_lines, "invalid lines dropped");
    part(now.busy, reported_.busy, "refused busy (503)");
    part(now.bad, reported_.bad, "bad (400)");
    part(now.too_large, reported_.too_large, "too large (413)");
    part(now.forbidden, reported_.forbidden, "forbidden (403)");
    part(now.not_found, reported_.not_found, "not found (404)");
    part(now.bad_method, reported_.bad_method, "wrong method (405)");
    part(now.failed, reported_.failed, "failed (500)");
    part(now.pings, reported_.pings, "pings");
    part(now.tls_refused, reported_.tls_refused, "TLS handshakes refused");
    part(now.forwarded, reported_.forwarded, "with X-Forwarded-For");
    part(guarded.cut_request, guard_reported_.cut_request, "requests cut at the --request-timeout deadline");
    part(guarded.cut_handshake, guard_reported_.cut_handshake,
         "TLS handshakes cut at the --handshake-timeout deadline");
    part(guarded.busy, guard_reported_.busy, "refused busy (503) with --max-bodies-in-flight reached");
    guard_reported_ = guarded;
    LOG_INFO("%s ingest: last %u s: %s", scheme_, config_.stats_interval_s, text.c_str());
    reported_ = now;
}

}  // namespace

std::unique_ptr<HttpIngest> start_http_ingest(struct event_base* base, int fd, bool tls, const Config& config,
                                              LineSink& sink, std::string& error) {
    std::unique_ptr<Ingest> ingest;
    try {
        ingest = std::make_unique<Ingest>(base, tls, config, sink);
        if (!ingest->start(fd, error)) return nullptr;
    } catch (const std::bad_alloc&) {
        error = "out of memory";
        return nullptr;
    }
    return ingest;
}

}  // namespace polymur
