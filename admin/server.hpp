// Serves the admin protocol on the supervisor's event loop: TCP and unix listeners, one command
// per connection, bounded request size and time.
#pragma once

#include <event2/event.h>

#include <list>
#include <vector>

#include "admin/command.hpp"

namespace polymur::admin {

inline constexpr size_t kMaxRequestBytes = 4096;
inline constexpr int kRequestTimeoutS = 10;

class Server {
public:
    Server(struct event_base* base, Backend& backend);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Takes a listening socket (the caller keeps ownership of the fd).
    void add_listener(int fd);
    void close_listeners();

    struct Session;  // one client connection, owned by the server until it closes

private:
    static void on_accept(evutil_socket_t fd, short, void* self);

    struct event_base* base_;
    Backend& backend_;
    std::vector<struct event*> listeners_;
    // Every open session: closed by the server when it goes, so none outlives it (or leaks at exit).
    std::list<Session> sessions_;
};

}  // namespace polymur::admin
