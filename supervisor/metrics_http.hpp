// The supervisor's HTTP endpoint for monitoring (--metrics-addr): GET /metrics in the Prometheus
// text format and GET /health (200 when ready, 503 otherwise). It runs on the supervisor's event
// loop with libevent's evhttp, far from the data path, with bounded connections, headers and time.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "admin/relay_status.hpp"
#include "common/http_accept_pause.hpp"

struct evhttp;
struct evhttp_request;
struct evhttp_connection;
struct evconnlistener;
struct bufferevent;

namespace polymur {

inline constexpr int kMetricsMaxConnections = 32;  // beyond this the listener pauses; the kernel queues the rest
inline constexpr int kMetricsTimeoutS = 10;        // a connection silent this long is closed

class MetricsHttpServer {
public:
    struct Source {
        std::function<RelayStatus()> status;
        std::function<Health()> health;
    };

    // Serves on `listen_fd` (the caller keeps ownership and closes it after this is destroyed).
    MetricsHttpServer(struct event_base* base, int listen_fd, Source source);
    ~MetricsHttpServer();
    MetricsHttpServer(const MetricsHttpServer&) = delete;
    MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

    bool ok() const { return http_ != nullptr; }

private:
    static struct bufferevent* on_accept(struct event_base* base, void* self);
    static void on_request(struct evhttp_request* request, void* self);
    static void on_connection_closed(struct evhttp_connection* connection, void* self);
    static void on_tick(evutil_socket_t, short, void* self);
    void handle(struct evhttp_request* request);
    void track(struct evhttp_connection* connection);
    void pause_or_resume();

    Source source_;
    struct evhttp* http_ = nullptr;
    struct evconnlistener* listener_ = nullptr;
    struct event* tick_ = nullptr;
    // Accepted connections that have not sent a request yet (evhttp closes them after
    // kMetricsTimeoutS), with when they were accepted, and connections that have.
    std::vector<std::pair<struct bufferevent*, int64_t>> accepted_;
    std::unordered_set<struct evhttp_connection*> open_;
    std::unique_ptr<HttpAcceptPause> accept_pause_;
};

}  // namespace polymur
