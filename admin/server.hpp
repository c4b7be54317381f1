// Serves the admin protocol on the supervisor's event loop: TCP and unix listeners, one command
// per connection, bounded request size, an absolute deadline per connection and a cap on
// concurrent connections (the oldest is dropped first). Who may change the configuration comes
// from the kernel (admin/peer.hpp) or a token.
#pragma once

#include <event2/event.h>

#include <cstdint>
#include <list>
#include <vector>

#include "admin/command.hpp"
#include "admin/peer.hpp"

namespace polymur::admin {

inline constexpr size_t kMaxRequestBytes = 4096;
inline constexpr int kRequestTimeoutS = 10;  // from accept to the end of the connection, whatever arrives
inline constexpr int kReportIntervalS = 10;  // how often cut and dropped connections are logged

struct Session;

class Server {
public:
    Server(struct event_base* base, Backend& backend, AdminPolicy policy, size_t max_connections);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Takes a listening socket (the caller keeps ownership of the fd).
    void add_listener(int fd);
    void close_listeners();

    // Called by a session as it ends.
    void forget(Session* session);
    void count_deadline() { ++cut_at_deadline_; }
    // Requests answered "error: ..." (bad commands, bad arguments, refused changes), logged every interval.
    void count_error() { ++errors_answered_; }
    uint64_t errors_answered() const { return errors_answered_; }
    Backend& backend() { return backend_; }
    const AdminPolicy& policy() const { return policy_; }

private:
    static void on_accept(evutil_socket_t fd, short, void* self);
    static void on_report(evutil_socket_t, short, void* self);
    static void on_resume_accepts(evutil_socket_t, short, void* self);
    void accept_ready(int listen_fd);
    void pause_accepts();
    void report();

    struct event_base* base_;
    Backend& backend_;
    AdminPolicy policy_;
    size_t max_connections_;
    std::vector<struct event*> listeners_;
    std::list<Session*> sessions_;  // oldest first
    struct event* report_ = nullptr;
    struct event* resume_accepts_ = nullptr;
    uint64_t accept_pauses_ = 0;  // since the last report: out of descriptors with no connection to drop
    uint64_t cut_at_deadline_ = 0;
    uint64_t dropped_at_cap_ = 0;
    uint64_t errors_answered_ = 0;
    uint64_t errors_reported_ = 0;
};

}  // namespace polymur::admin
