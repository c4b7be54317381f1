// An evhttp listener that pauses when accept() fails for want of descriptors or kernel memory.
//
// libevent's listener retries a failed accept() at once while a client waits in the backlog: out of
// descriptors, an evhttp server spins a core for as long as the shortage lasts. This takes the listener's
// error callback, disables the listener for 100 ms on a shortage (net::accept_shortage) and logs at most
// one line a second, with the failures held back since the last one.
#pragma once

#include <event2/event.h>

#include <functional>
#include <string>

#include "common/rate_limited_log.hpp"

struct evhttp;
struct evconnlistener;

namespace polymur {

class HttpAcceptPause {
public:
    // `listener` is `http`'s (evhttp sets itself as the listener's callback argument, which is how an error
    // finds its HttpAcceptPause). `resume` is called when a pause ends and must enable the listener again
    // unless its owner has its own reason to keep it off; `subject` begins the log line.
    HttpAcceptPause(struct event_base* base, struct evhttp* http, struct evconnlistener* listener, std::string subject,
                    std::function<void()> resume);
    ~HttpAcceptPause();
    HttpAcceptPause(const HttpAcceptPause&) = delete;
    HttpAcceptPause& operator=(const HttpAcceptPause&) = delete;

    bool ok() const { return timer_ != nullptr; }
    // True from a shortage until the pause's end.
    bool pausing() const { return pausing_; }

private:
    static void on_error(struct evconnlistener* listener, void* http);
    static void on_resume(evutil_socket_t, short, void* self);
    void failed(int error);

    struct evhttp* http_;
    struct evconnlistener* listener_;
    std::string subject_;
    std::function<void()> resume_;
    struct event* timer_ = nullptr;
    bool pausing_ = false;
    RateLimitedLog log_;
};

}  // namespace polymur
