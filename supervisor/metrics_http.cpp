#include "supervisor/metrics_http.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <algorithm>
#include <cstring>
#include <exception>

#include "common/clock.hpp"
#include "common/guard.hpp"
#include "common/http_accept_pause.hpp"
#include "common/log.hpp"

namespace polymur {

MetricsHttpServer::MetricsHttpServer(struct event_base* base, int listen_fd, Source source)
        : source_(std::move(source)) {
    listener_ = evconnlistener_new(base, nullptr, nullptr, 0, 0, listen_fd);
    http_ = listener_ ? evhttp_new(base) : nullptr;
    tick_ = event_new(base, -1, EV_PERSIST, &MetricsHttpServer::on_tick, this);
    if (!http_ || !tick_) {
        LOG_ERROR("metrics: cannot set up the HTTP server");
        if (http_) evhttp_free(http_);
        http_ = nullptr;
        return;
    }
    evhttp_set_timeout(http_, kMetricsTimeoutS);
    evhttp_set_max_headers_size(http_, 8192);
    evhttp_set_max_body_size(http_, 0);
    evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_bevcb(http_, &MetricsHttpServer::on_accept, this);
    evhttp_set_gencb(http_, &MetricsHttpServer::on_request, this);
    evhttp_bind_listener(http_, listener_);
    // Out of descriptors, the listener pauses 100 ms at a time rather than retrying at once (a core at 100 %).
    accept_pause_ = std::make_unique<HttpAcceptPause>(base, http_, listener_, "metrics", [this] { pause_or_resume(); });
    struct timeval second = {1, 0};
    event_add(tick_, &second);
}

MetricsHttpServer::~MetricsHttpServer() {
    accept_pause_.reset();
    if (tick_) event_free(tick_);
    if (http_) {
        listener_ = nullptr;  // evhttp_free frees it, then closes every connection (on_connection_closed)
        evhttp_free(http_);
    } else if (listener_) {
        evconnlistener_free(listener_);
    }
}

// Called by evhttp for every accepted connection, before it reads anything: this is where the
// number of connections is bounded. At the limit the listener pauses (further clients wait in the
// kernel's backlog and cost the supervisor nothing) until one closes.
struct bufferevent* MetricsHttpServer::on_accept(struct event_base* base, void* self_ptr) {
    auto* self = static_cast<MetricsHttpServer*>(self_ptr);
    struct bufferevent* bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    try {
        if (bev) self->accepted_.emplace_back(bev, monotonic_ms());
    } catch (const std::exception&) {
        // Out of memory: the connection is served uncounted rather than leaving libevent by an exception.
    }
    self->pause_or_resume();
    return bev;
}

void MetricsHttpServer::pause_or_resume() {
    if (!listener_) return;
    // Off while full or while out of descriptors (the accept pause disabled it and calls this at its end).
    bool off = static_cast<int>(accepted_.size() + open_.size()) >= kMetricsMaxConnections ||
        (accept_pause_ && accept_pause_->pausing());
    if (off) evconnlistener_disable(listener_);
    else evconnlistener_enable(listener_);
}

// A connection that never sent a request is closed by evhttp after kMetricsTimeoutS without
// telling us; it stops counting a second later.
void MetricsHttpServer::on_tick(evutil_socket_t, short, void* self_ptr) {
    auto* self = static_cast<MetricsHttpServer*>(self_ptr);
    int64_t expired = monotonic_ms() - (kMetricsTimeoutS + 1) * 1000;
    std::erase_if(self->accepted_, [&](const auto& entry) { return entry.second < expired; });
    self->pause_or_resume();
}

void MetricsHttpServer::on_connection_closed(struct evhttp_connection* connection, void* self_ptr) {
    auto* self = static_cast<MetricsHttpServer*>(self_ptr);
    self->open_.erase(connection);
    self->pause_or_resume();
}

// From its first request on, a connection is counted until evhttp reports it closed.
void MetricsHttpServer::track(struct evhttp_connection* connection) {
    if (!connection || open_.count(connection)) return;
    open_.insert(connection);
    struct bufferevent* bev = evhttp_connection_get_bufferevent(connection);
    std::erase_if(accepted_, [&](const auto& entry) { return entry.first == bev; });
    evhttp_connection_set_closecb(connection, &MetricsHttpServer::on_connection_closed, this);
}

void MetricsHttpServer::on_request(struct evhttp_request* request, void* self) {
    if (!guarded("metrics: request", [&] { static_cast<MetricsHttpServer*>(self)->handle(request); }))
        evhttp_send_error(request, HTTP_INTERNAL, nullptr);
}

void MetricsHttpServer::handle(struct evhttp_request* request) {
    track(evhttp_request_get_connection(request));
    const struct evhttp_uri* uri = evhttp_request_get_evhttp_uri(request);
    const char* path = uri ? evhttp_uri_get_path(uri) : nullptr;
    if (!path) path = "";
    struct evkeyvalq* headers = evhttp_request_get_output_headers(request);
    struct evbuffer* body = evhttp_request_get_output_buffer(request);
    if (std::strcmp(path, "/metrics") == 0) {
        Health health = source_.health();
        std::string text = format_prometheus(source_.status(), health);
        evhttp_add_header(headers, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        evbuffer_add(body, text.data(), text.size());
        evhttp_send_reply(request, HTTP_OK, "OK", body);
    } else if (std::strcmp(path, "/health") == 0) {
        Health health = source_.health();
        std::string text = (health.ready ? "ok\n" : "not ready: " + health.reason + "\n");
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        evhttp_add_header(headers, "Cache-Control", "no-store");
        evbuffer_add(body, text.data(), text.size());
        evhttp_send_reply(request, health.ready ? HTTP_OK : 503, health.ready ? "OK" : "Service Unavailable", body);
    } else {
        const char text[] = "not found: try /metrics or /health\n";
        evhttp_add_header(headers, "Content-Type", "text/plain; charset=utf-8");
        evbuffer_add(body, text, sizeof text - 1);
        evhttp_send_reply(request, HTTP_NOTFOUND, "Not Found", body);
    }
}

}  // namespace polymur
