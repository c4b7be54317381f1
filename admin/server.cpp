#include "admin/server.hpp"

#include "common/guard.hpp"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>
#include <new>
#include <string>

#include "common/log.hpp"
#include "common/net.hpp"

namespace polymur::admin {

struct Session {
    Server* server = nullptr;
    struct bufferevent* bev = nullptr;
    struct event* deadline = nullptr;
    std::list<Session*>::iterator position;
    Peer peer;
    Caller caller;
    bool answered = false;
    bool peer_eof = false;
};

namespace {

void close_session(Session* session) {
    session->server->forget(session);
    if (session->deadline) event_free(session->deadline);
    bufferevent_free(session->bev);
    delete session;
}

std::string who(const Session& session) {
    std::string text = "admin client " + session.peer.address;
    if (session.peer.uid) text += " (uid " + std::to_string(*session.peer.uid) + ")";
    return text;
}

std::string run(Session* session, std::string_view line) {
    std::string refused;
    std::string reply = execute(line, session->server->backend(), session->caller, &refused);
    if (!refused.empty()) {
        Command command = parse_command(line);
        LOG_WARN("%s: %s %s refused: %s", who(*session).c_str(), command.name.c_str(),
                 command.argument.substr(0, 300).c_str(), refused.c_str());
    }
    return reply;
}

// After the reply the session half-closes and reads (and discards) until the client closes, so a
// client still sending an over-long request gets our answer instead of a reset.
void finish(Session* session, const std::string& reply) {
    session->answered = true;
    if (reply.compare(0, 7, "error: ") == 0) session->server->count_error();
    bufferevent_write(session->bev, reply.data(), reply.size());
}

void on_write(struct bufferevent* bev, void* arg) {
    auto* session = static_cast<Session*>(arg);
    if (!session->answered || evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;
    if (session->peer_eof) {
        close_session(session);
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
        std::string reply = run(session, std::string_view(line, length));
        free(line);
        finish(session, reply);
    } else if (evbuffer_get_length(input) > kMaxRequestBytes) {
        finish(session, "error: request line longer than " + std::to_string(kMaxRequestBytes) + " bytes\n");
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
                finish(session, "error: no command received\n");
            } else {
                std::string text(length, '\0');
                evbuffer_remove(input, text.data(), length);
                finish(session, run(session, text));
            }
            return;
        }
        if (evbuffer_get_length(bufferevent_get_output(bev)) != 0) return;  // on_write closes
        close_session(session);
        return;
    }
    close_session(session);
}

// The connection's whole life is bounded, however slowly its bytes arrive: a best-effort error
// line (when nothing was answered yet), then close.
void on_deadline(evutil_socket_t fd, short, void* arg) {
    auto* session = static_cast<Session*>(arg);
    if (!session->answered) {
        std::string reply = "error: no complete command within " + std::to_string(kRequestTimeoutS) + " s\n";
        (void)send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        session->server->count_deadline();
    }
    close_session(session);
}

}  // namespace

Server::Server(struct event_base* base, Backend& backend, AdminPolicy policy, size_t max_connections)
        : base_(base), backend_(backend), policy_(std::move(policy)),
          max_connections_(max_connections ? max_connections : 1) {
    report_ = event_new(base_, -1, EV_PERSIST, &Server::on_report, this);
    struct timeval interval = {kReportIntervalS, 0};
    event_add(report_, &interval);
    resume_accepts_ = evtimer_new(base_, &Server::on_resume_accepts, this);
}

Server::~Server() {
    close_listeners();
    while (!sessions_.empty()) close_session(sessions_.front());
    if (report_) event_free(report_);
    if (resume_accepts_) event_free(resume_accepts_);
}

void Server::forget(Session* session) { sessions_.erase(session->position); }

void Server::add_listener(int fd) {
    struct event* ev = event_new(base_, fd, EV_READ | EV_PERSIST, &Server::on_accept, this);
    event_add(ev, nullptr);
    listeners_.push_back(ev);
}

void Server::close_listeners() {
    for (struct event* ev : listeners_) event_free(ev);
    listeners_.clear();
}

void Server::pause_accepts() {
    for (struct event* ev : listeners_) event_del(ev);
    ++accept_pauses_;
    struct timeval pause = {0, 100000};
    evtimer_add(resume_accepts_, &pause);
}

void Server::on_resume_accepts(evutil_socket_t, short, void* self_ptr) {
    for (struct event* ev : static_cast<Server*>(self_ptr)->listeners_) event_add(ev, nullptr);
}

void Server::on_report(evutil_socket_t, short, void* self_ptr) {
    guarded("admin: report", [&] { static_cast<Server*>(self_ptr)->report(); });
}

void Server::report() {
    Server* self = this;
    if (self->cut_at_deadline_ || self->dropped_at_cap_)
        LOG_WARN(
            "admin: last %d s: %llu connections cut at the %d s deadline, %llu oldest connections dropped at the cap of "
            "%zu (%zu open)",
            kReportIntervalS, static_cast<unsigned long long>(self->cut_at_deadline_), kRequestTimeoutS,
            static_cast<unsigned long long>(self->dropped_at_cap_), self->max_connections_, self->sessions_.size());
    self->cut_at_deadline_ = 0;
    self->dropped_at_cap_ = 0;
    if (accept_pauses_)
        LOG_WARN("admin: last %d s: out of file descriptors, accepting paused for 100 ms %llu times", kReportIntervalS,
                 static_cast<unsigned long long>(accept_pauses_));
    accept_pauses_ = 0;
    if (errors_answered_ != errors_reported_)
        LOG_NOTICE("admin: last %d s: %llu requests answered with an error (%llu since the start)", kReportIntervalS,
                   static_cast<unsigned long long>(errors_answered_ - errors_reported_),
                   static_cast<unsigned long long>(errors_answered_));
    errors_reported_ = errors_answered_;
}

void Server::on_accept(evutil_socket_t listen_fd, short, void* self_ptr) {
    guarded("admin: accept", [&] { static_cast<Server*>(self_ptr)->accept_ready(listen_fd); });
}

void Server::accept_ready(int listen_fd) {
    Server* self = this;
    for (int i = 0; i < 16; ++i) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE) && !self->sessions_.empty()) {
            // Out of descriptors: the oldest admin connection makes room rather than the new one waiting.
            ++self->dropped_at_cap_;
            close_session(self->sessions_.front());
            continue;
        }
        if (fd < 0) {
            // Out of descriptors with no admin connection to close: the connection stays in the backlog and
            // the socket readable, so waiting on it again at once would spin. Wait 100 ms instead.
            if (net::accept_shortage(errno)) self->pause_accepts();
            return;
        }
        // Full: the oldest connection makes room, so a flood of slow clients cannot lock out a new one.
        if (self->sessions_.size() >= self->max_connections_) {
            ++self->dropped_at_cap_;
            close_session(self->sessions_.front());
        }
        struct bufferevent* bev = bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!bev) {
            ::close(fd);
            continue;
        }
        auto* session = new Session;
        session->server = self;
        session->bev = bev;
        session->position = self->sessions_.insert(self->sessions_.end(), session);
        session->peer = identify_peer(fd);
        session->caller.policy = &self->policy_;
        session->caller.may_change = self->policy_.may_change(session->peer);
        if (!session->caller.may_change) {
            if (session->peer.kind == Peer::Kind::remote)
                session->caller.why_not = "changes from beyond loopback need token=<secret> (--admin-token-file)";
            else if (!session->peer.uid) session->caller.why_not = "cannot tell which user owns this connection";
            else
                session->caller.why_not = "uid " + std::to_string(*session->peer.uid) +
                    " may not change destinations (root, the service's user, --admin-users, "
                    "--admin-groups; or token=<secret>)";
        }
        // A timeout-only event that knows the socket, for the deadline's last words.
        session->deadline = event_new(
            self->base_, fd, 0,
            [](evutil_socket_t f, short w, void* s) { guarded("admin: deadline", [&] { on_deadline(f, w, s); }); },
            session);
        struct timeval deadline = {kRequestTimeoutS, 0};
        event_add(session->deadline, &deadline);
        bufferevent_setcb(
            bev, [](struct bufferevent* b, void* s) { guarded("admin: read", [&] { on_read(b, s); }); },
            [](struct bufferevent* b, void* s) { guarded("admin: write", [&] { on_write(b, s); }); },
            [](struct bufferevent* b, short events, void* s) {
                guarded("admin: event", [&] { on_event(b, events, s); });
            },
            session);
        bufferevent_setwatermark(bev, EV_READ, 0, kMaxRequestBytes + 1);
        bufferevent_enable(bev, EV_READ);
    }
}

}  // namespace polymur::admin
