// The gateway's connections as the gateway sees them, beside evhttp: an absolute deadline for
// each TLS handshake (from accept) and each request (from its first byte), however slowly its bytes
// arrive, and a bound on the request bytes being received at once in this process. A connection
// past its deadline is shut down (evhttp then frees it as if the client had left); one that would
// take the process past the bound is answered 503 with Retry-After and its body read and discarded, so
// that a client still sending it is not reset before it can read the answer.
#pragma once

#include <event2/bufferevent.h>
#include <event2/event.h>

#include <cstdint>
#include <memory>
#include <unordered_map>

namespace polymur {

class HttpConnectionGuard {
public:
    struct Limits {
        int64_t request_ms = 30000;
        int64_t handshake_ms = 10000;  // TLS only
        uint64_t bodies_in_flight = 128ull << 20;
        uint64_t max_request_bytes = 64ull << 20;  // reserved for a body of unknown length (chunked)
    };
    struct Counts {
        uint64_t cut_request = 0, cut_handshake = 0, busy = 0;
        bool operator==(const Counts&) const = default;
    };

    HttpConnectionGuard(struct event_base* base, Limits limits, bool tls);
    ~HttpConnectionGuard();
    HttpConnectionGuard(const HttpConnectionGuard&) = delete;
    HttpConnectionGuard& operator=(const HttpConnectionGuard&) = delete;

    // Called with each new connection's bufferevent, before evhttp uses it.
    void track(struct bufferevent* bev);
    // The request on `bev` was answered: its bytes are no longer in flight and its deadline ends.
    void request_done(struct bufferevent* bev);
    const Counts& counts() const { return counts_; }
    Counts& mutable_counts() { return counts_; }
    const Limits& limits() const { return limits_; }
    bool tls() const { return tls_; }

    struct Connection;

private:
    static void on_sweep(evutil_socket_t, short, void* self);
    void sweep();
    void release(Connection& c);

    struct event_base* base_;
    Limits limits_;
    bool tls_;
    struct event* sweep_ = nullptr;
    std::unordered_map<struct bufferevent*, std::unique_ptr<Connection>> connections_;
    Counts counts_;
};

}  // namespace polymur
