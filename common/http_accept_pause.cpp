#include "common/http_accept_pause.hpp"

#include <event2/listener.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "common/guard.hpp"
#include "common/log.hpp"
#include "common/net.hpp"

namespace polymur {

namespace {

// The error callback receives the listener's callback argument, which evhttp sets to itself: the pauses of
// this process, found by their evhttp (a handful at most).
std::vector<HttpAcceptPause*>& pauses_by_http() {
    static std::vector<HttpAcceptPause*> pauses;
    return pauses;
}

}  // namespace

HttpAcceptPause::HttpAcceptPause(struct event_base* base, struct evhttp* http, struct evconnlistener* listener,
                                 std::string subject, std::function<void()> resume)
        : http_(http), listener_(listener), subject_(std::move(subject)), resume_(std::move(resume)) {
    timer_ = evtimer_new(base, &HttpAcceptPause::on_resume, this);
    if (!timer_) return;
    pauses_by_http().push_back(this);
    evconnlistener_set_error_cb(listener_, &HttpAcceptPause::on_error);
}

HttpAcceptPause::~HttpAcceptPause() {
    auto& pauses = pauses_by_http();
    pauses.erase(std::remove(pauses.begin(), pauses.end(), this), pauses.end());
    if (timer_) event_free(timer_);
}

void HttpAcceptPause::on_error(struct evconnlistener*, void* http) {
    const int error = EVUTIL_SOCKET_ERROR();
    for (HttpAcceptPause* pause : pauses_by_http())
        if (pause->http_ == http) guarded("accept error", [&] { pause->failed(error); });
}

void HttpAcceptPause::failed(int error) {
    const bool shortage = net::accept_shortage(error);
    log_.event([&](unsigned long long held) {
        LOG_WARN("%s: accept failed: %s; %s (%llu more since the last report)", subject_.c_str(), std::strerror(error),
                 shortage ? "pausing accepts for 100 ms" : "going on", held);
    });
    if (!shortage) return;
    pausing_ = true;
    evconnlistener_disable(listener_);
    struct timeval pause = {0, 100000};
    evtimer_add(timer_, &pause);
}

void HttpAcceptPause::on_resume(evutil_socket_t, short, void* self_ptr) {
    auto* self = static_cast<HttpAcceptPause*>(self_ptr);
    self->pausing_ = false;
    guarded("accept resume", [&] { self->resume_(); });
}

}  // namespace polymur
