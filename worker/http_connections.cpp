#include "worker/http_connections.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.hpp"

namespace polymur {
namespace {

constexpr int kSweepMs = 250;
// A refused client is read from (its bytes discarded) until it leaves, so that its kernel never sees a reset
// while it is still sending its body, which would hide the 503 from it. Bounded: it is closed after this long
// without a byte from it, at the request deadline from the refusal, or once it sends more than its request
// announced (plus kMaxHead).
constexpr int64_t kRefusedLingerMs = 5000;

// Request body bytes reserved in this process, over every HTTP and HTTPS endpoint.
uint64_t g_reserved = 0;
constexpr size_t kMaxHead = 16 * 1024;  // past this without an end of headers, evhttp refuses it anyway

const char kBusyReply[] =
    "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 41\r\nConnection: close\r\n\r\ntoo many request bodies in flight; retry\n";

}  // namespace

struct HttpConnectionGuard::Connection {
    HttpConnectionGuard* guard = nullptr;
    struct bufferevent* bev = nullptr;
    struct evbuffer_cb_entry* watch = nullptr;
    int64_t accepted_ms = 0;
    int64_t first_byte_ms = 0;     // of the request being received; 0: between requests
    std::string head;              // its bytes until the end of its headers
    bool admitted = false;         // its body is reserved
    uint64_t reserved = 0;         // counted in g_reserved
    int64_t refused_ms = 0;        // taken from evhttp to answer 503
    int64_t refused_last_ms = 0;   // the last byte read from it since
    uint64_t refused_left = 0;     // bytes it may still send (its announced body, the end of its head)
    bool refused_closing = false;  // its bytes are past refused_left: closed at the next sweep
    bufferevent_data_cb evhttp_read = nullptr, evhttp_write = nullptr;
    bufferevent_event_cb evhttp_event = nullptr;
    void* evhttp_arg = nullptr;
};

namespace {

using Connection = HttpConnectionGuard::Connection;

void forget_bytes(Connection& c) {
    g_reserved -= c.reserved;
    c.reserved = 0;
    c.admitted = false;
    c.first_byte_ms = 0;
    std::string().swap(c.head);
}

// Hands the connection back to evhttp and tells it the client is gone; evhttp frees it.
void give_back(Connection& c, short events) {
    bufferevent_setcb(c.bev, c.evhttp_read, c.evhttp_write, c.evhttp_event, c.evhttp_arg);
    c.refused_ms = 0;
    if (c.evhttp_event) c.evhttp_event(c.bev, events, c.evhttp_arg);
}

void refused_read(struct bufferevent* bev, void* arg) {
    auto& c = *static_cast<Connection*>(arg);
    struct evbuffer* input = bufferevent_get_input(bev);
    size_t length = evbuffer_get_length(input);
    if (length == 0) return;
    evbuffer_drain(input, length);  // the rest of the body, unread
    c.refused_last_ms = monotonic_ms();
    if (length > c.refused_left) {
        c.refused_left = 0;
        c.refused_closing = true;
        bufferevent_disable(bev, EV_READ);
    } else {
        c.refused_left -= length;
    }
}

// Once the 503 is written, a plain connection is half-closed: the client reads the answer and end-of-file, and
// may go on sending its body, which is still read and discarded. (A TLS one is not: its client would see the
// end of the TCP stream without a close_notify.)
void refused_written(struct bufferevent* bev, void* arg) {
    auto& c = *static_cast<Connection*>(arg);
    if (c.guard->tls()) return;
    int fd = bufferevent_getfd(bev);
    if (fd >= 0) shutdown(fd, SHUT_WR);
    bufferevent_disable(bev, EV_WRITE);
}

void refused_event(struct bufferevent*, short events, void* arg) { give_back(*static_cast<Connection*>(arg), events); }

// evhttp will never see the rest of this request: the 503 is ours, the body (`body` bytes announced) is
// discarded as it arrives, and evhttp gets the connection back only to free it, when the client leaves or
// at the latest when kRefusedLingerMs ends.
void refuse(Connection& c, uint64_t body) {
    bufferevent_getcb(c.bev, &c.evhttp_read, &c.evhttp_write, &c.evhttp_event, &c.evhttp_arg);
    c.refused_ms = c.refused_last_ms = monotonic_ms();
    c.refused_left = body + kMaxHead;  // what is left of the head is in the input too
    c.refused_closing = false;
    bufferevent_setcb(c.bev, refused_read, refused_written, refused_event, &c);
    bufferevent_write(c.bev, kBusyReply, sizeof kBusyReply - 1);
    bufferevent_enable(c.bev, EV_READ | EV_WRITE);
    refused_read(c.bev, &c);
}

// The body size a request announces: Content-Length, or `unknown` for a chunked body; 0 for none.
uint64_t announced_body(std::string_view head, uint64_t unknown) {
    uint64_t length = 0;
    size_t at = 0;
    while ((at = head.find("\r\n", at)) != std::string_view::npos) {
        at += 2;
        std::string_view line = head.substr(at, head.find("\r\n", at) - at);
        size_t colon = line.find(':');
        if (colon == std::string_view::npos) continue;
        std::string name(line.substr(0, colon));
        for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
        if (name == "transfer-encoding") return unknown;
        if (name == "content-length") {
            uint64_t n = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
            (void)end;
            length = ec == std::errc() ? std::max(length, n) : unknown;  // evhttp refuses what it cannot read
        }
    }
    return std::min(length, unknown);
}

// Each request reserves the body it announces before its body is read; while others hold
// reservations, one that does not fit is answered 503 at once. A request alone always fits, so a
// batch larger than the bound still goes through when it is its turn.
void on_input(struct evbuffer* input, const struct evbuffer_cb_info* info, void* arg) {
    if (info->n_added == 0) return;
    auto& c = *static_cast<Connection*>(arg);
    if (c.refused_ms || c.admitted) return;
    if (!c.first_byte_ms) c.first_byte_ms = monotonic_ms();
    // evhttp consumes header lines as they complete; keep our own copy of this request's head.
    size_t length = evbuffer_get_length(input);
    size_t take = std::min(info->n_added, kMaxHead - std::min(kMaxHead, c.head.size()));
    if (take) {
        struct evbuffer_ptr at;
        if (evbuffer_ptr_set(input, &at, length - info->n_added, EVBUFFER_PTR_SET) == 0) {
            size_t old = c.head.size();
            c.head.resize(old + take);
            evbuffer_copyout_from(input, &at, c.head.data() + old, take);
        }
    }
    size_t end = c.head.find("\r\n\r\n");
    if (end == std::string::npos && c.head.size() < kMaxHead) return;  // the head is still arriving
    const HttpConnectionGuard::Limits& limits = c.guard->limits();
    uint64_t want = announced_body(std::string_view(c.head).substr(0, end), limits.max_request_bytes);
    std::string().swap(c.head);
    if (g_reserved > 0 && g_reserved + want > limits.bodies_in_flight) {
        ++c.guard->mutable_counts().busy;
        refuse(c, want);
        return;
    }
    c.admitted = true;
    c.reserved = want;
    g_reserved += want;
}

}  // namespace

HttpConnectionGuard::HttpConnectionGuard(struct event_base* base, Limits limits, bool tls)
        : base_(base), limits_(limits), tls_(tls) {
    sweep_ = event_new(base_, -1, EV_PERSIST, &HttpConnectionGuard::on_sweep, this);
    struct timeval interval = {0, kSweepMs * 1000};
    event_add(sweep_, &interval);
}

HttpConnectionGuard::~HttpConnectionGuard() {
    if (sweep_) event_free(sweep_);
    for (auto& [bev, c] : connections_) release(*c);
}

void HttpConnectionGuard::track(struct bufferevent* bev) {
    auto c = std::make_unique<Connection>();
    c->guard = this;
    c->bev = bev;
    c->accepted_ms = monotonic_ms();
    // Our reference keeps the bufferevent (not its connection) alive until the sweep sees that
    // evhttp is done with it, so a pointer here never names a freed or reused one.
    bufferevent_incref(bev);
    c->watch = evbuffer_add_cb(bufferevent_get_input(bev), &on_input, c.get());
    connections_.emplace(bev, std::move(c));
}

void HttpConnectionGuard::request_done(struct bufferevent* bev) {
    auto found = connections_.find(bev);
    if (found != connections_.end()) forget_bytes(*found->second);
}

void HttpConnectionGuard::release(Connection& c) {
    forget_bytes(c);
    if (c.watch) evbuffer_remove_cb_entry(bufferevent_get_input(c.bev), c.watch);
    bufferevent_decref(c.bev);
}

void HttpConnectionGuard::on_sweep(evutil_socket_t, short, void* self) {
    static_cast<HttpConnectionGuard*>(self)->sweep();
}

void HttpConnectionGuard::sweep() {
    int64_t now = monotonic_ms();
    std::vector<struct bufferevent*> done;
    for (auto& [bev, c] : connections_) {
        bufferevent_data_cb read = nullptr;
        bufferevent_event_cb event = nullptr;
        bufferevent_getcb(bev, &read, nullptr, &event, nullptr);
        if (!read && !event) {  // evhttp freed it: only our reference is left
            done.push_back(bev);
            continue;
        }
        // Shutting the socket down makes evhttp read end-of-file and free the connection itself.
        int fd = bufferevent_getfd(bev);
        if (c->refused_ms) {
            if (c->refused_closing || now - c->refused_last_ms > kRefusedLingerMs ||
                now - c->refused_ms > std::max(limits_.request_ms, kRefusedLingerMs)) {
                if (fd >= 0) shutdown(fd, SHUT_RDWR);
                give_back(*c, BEV_EVENT_EOF | BEV_EVENT_READING);
            }
            continue;
        }
        bool handshaking = false;
        if (tls_) {
            SSL* ssl = bufferevent_openssl_get_ssl(bev);
            handshaking = ssl && !SSL_is_init_finished(ssl);
        }
        if (handshaking && now - c->accepted_ms > limits_.handshake_ms) {
            ++counts_.cut_handshake;
            if (fd >= 0) shutdown(fd, SHUT_RDWR);
            c->accepted_ms = now;  // once
        } else if (c->first_byte_ms && now - c->first_byte_ms > limits_.request_ms) {
            ++counts_.cut_request;
            if (fd >= 0) shutdown(fd, SHUT_RDWR);
            forget_bytes(*c);
        }
    }
    for (struct bufferevent* bev : done) {
        auto found = connections_.find(bev);
        release(*found->second);
        connections_.erase(found);
    }
}

}  // namespace polymur
