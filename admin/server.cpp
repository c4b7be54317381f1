#include "admin/server.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <iterator>
#include <new>
#include <string>

namespace polymur::admin {

struct Server::Session {
    Backend* backend;
    std::list<Session>* owner;
    std::list<Session>::iterator self;  // its place in owner, to close in O(1)
    struct bufferevent* bev = nullptr;
    bool answered = false;
    bool peer_eof = false;
};

namespace {

using Session = Server::Session;

void close_session(struct bufferevent* bev, Session* session) {
    bufferevent_free(bev);
    session->owner->erase(session->self);
}

// After the reply the session half-closes and reads (and discards) until the client closes, so a
// client still sending an over-long request gets our answer instead of a reset.
void finish(struct bufferevent* bev, Session* session, const std::string& reply) {
    session->answered = true;
    bufferevent_write(bev, reply.data(), reply.size());
}

void on_write(struct bufferevent* bev, void* arg) {
    auto* session = static_cast<Session*>(arg);
    if (!session->answered || evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
    if (session->peer_eof) {
        close_session(bev, session);
        return;
    }
    shutdown(bufferevent_getfd(bev), SHUT_WR);
}

void on_read(struct bufferevent* bev, void* arg) {
    auto* session = static_cast<Session*>(arg);
    struct evbuffer* input = bufferevent_get_input(bev);
    if (session->answered) {
        evbuffer_drain(input, evbuffer_get_length(input));
        return;
    }
    size_t length = 0;
    char* line = evbuffer_readln(input, &length, EVBUFFER_EOL_LF);
    if (line) {
        std::string reply = execute(std::string_view(line, length), *session->backend);
        free(line);
        finish(bev, session, reply);
    } else if (evbuffer_get_length(input) > kMaxRequestBytes) {
        finish(bev, session, "error: request line longer than " + std::to_string(kMaxRequestBytes) + " bytes\n");
    }
}

void on_event(struct bufferevent* bev, short events, void* arg) {
    auto* session = static_cast<Session*>(arg);
    if (events & BEV_EVENT_EOF) {
        session->peer_eof = true;
        bufferevent_disable(bev, EV_READ);
        if (!session->answered) {
            // Half-closed: the client sent its request (maybe without '\n') and shut down its side.
            struct evbuffer* input = bufferevent_get_input(bev);
            size_t length = evbuffer_get_length(input);
            if (length == 0) {
                finish(bev, session, "error: no command received\n");
            } else {
                std::string text(length, '\0');
                evbuffer_remove(input, text.data(), length);
                finish(bev, session, execute(text, *session->backend));
            }
            return;
        }
        if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;  // on_write closes
        close_session(bev, session);
        return;
    }
    if ((events & BEV_EVENT_TIMEOUT) && !session->answered && (events & BEV_EVENT_READING)) {
        finish(bev, session, "error: no command within " + std::to_string(kRequestTimeoutS) + " s\n");
        return;
    }
    close_session(bev, session);
}

}  // namespace

Server::Server(struct event_base* base, Backend& backend) : base_(base), backend_(backend) {}

Server::~Server() {
    close_listeners();
    while (!sessions_.empty()) close_session(sessions_.front().bev, &sessions_.front());
}

void Server::add_listener(int fd) {
    struct event* ev = event_new(base_, fd, EV_READ | EV_PERSIST, &Server::on_accept, this);
    event_add(ev, nullptr);
    listeners_.push_back(ev);
}

void Server::close_listeners() {
    for (struct event* ev : listeners_) event_free(ev);
    listeners_.clear();
}

void Server::on_accept(evutil_socket_t listen_fd, short, void* self_ptr) {
    auto* self = static_cast<Server*>(self_ptr);
    for (int i = 0; i < 16; ++i) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        struct bufferevent* bev = bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            ::close(fd);
            continue;
        }
        try {
            self->sessions_.push_back(Session {&self->backend_, &self->sessions_, {}, bev});
        } catch (const std::bad_alloc&) {  // nothing may unwind through libevent
            bufferevent_free(bev);
            continue;
        }
        Session* session = &self->sessions_.back();
        session->self = std::prev(self->sessions_.end());
        bufferevent_setcb(bev, on_read, on_write, on_event, session);
        struct timeval timeout {kRequestTimeoutS, 0};
        bufferevent_set_timeouts(bev, &timeout, &timeout);
        bufferevent_setwatermark(bev, EV_READ, 0, kMaxRequestBytes + 1);
        bufferevent_enable(bev, EV_READ);
    }
}

}  // namespace polymur::admin
