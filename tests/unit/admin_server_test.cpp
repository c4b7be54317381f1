// The admin server's sessions (admin/server): a session still open when the server goes is closed
// with it, not leaked (LeakSanitizer found them at every supervisor exit with an admin client connected).
#include "admin/server.hpp"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/unique_fd.hpp"

namespace polymur::admin {
namespace {

class StatsBackend : public Backend {
public:
    std::string getdest() override { return "{}\n"; }
    std::string putdest(const std::string&) override { return "no\n"; }
    std::string deldest(const std::string&) override { return "no\n"; }
    std::string stats() override { return "STATS\n"; }
};

UniqueFd listen_loopback(uint16_t& port) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in address {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    EXPECT_EQ(listen(fd.get(), 8), 0);
    socklen_t length = sizeof address;
    getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    return fd;
}

UniqueFd connect_loopback(uint16_t port) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address {};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(port);
    EXPECT_EQ(connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    return fd;
}

// Runs the loop until `fd` is readable (an answer or EOF), at most about `tries` x 10 ms.
bool readable_after_loop(struct event_base* base, int fd, int tries = 200) {
    for (int i = 0; i < tries; ++i) {
        if (base) event_base_loop(base, EVLOOP_NONBLOCK);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 10) > 0) return true;
    }
    return false;
}

TEST(AdminServer, AnswersACommand) {
    struct event_base* base = event_base_new();
    StatsBackend backend;
    uint16_t port = 0;
    UniqueFd listener = listen_loopback(port);
    {
        Server server(base, backend, AdminPolicy {}, 64);
        server.add_listener(listener.get());
        UniqueFd client = connect_loopback(port);
        ASSERT_EQ(write(client.get(), "stats\n", 6), 6);
        ASSERT_TRUE(readable_after_loop(base, client.get()));
        char reply[64] = {};
        EXPECT_EQ(read(client.get(), reply, sizeof reply - 1), 6);
        EXPECT_STREQ(reply, "STATS\n");
    }
    event_base_free(base);
}

TEST(AdminServer, SessionsStillOpenAreClosedWithTheServer) {
    struct event_base* base = event_base_new();
    StatsBackend backend;
    uint16_t port = 0;
    UniqueFd listener = listen_loopback(port);
    auto server = std::make_unique<Server>(base, backend, AdminPolicy {}, 64);
    server->add_listener(listener.get());
    // Connected and accepted, no command yet: the session waits for one.
    UniqueFd client = connect_loopback(port);
    for (int i = 0; i < 20; ++i) event_base_loop(base, EVLOOP_NONBLOCK);
    EXPECT_FALSE(readable_after_loop(base, client.get(), 20));
    server.reset();
    // The session's socket is closed (libevent finishes freeing a bufferevent in its loop): the
    // client reads end of file at once.
    ASSERT_TRUE(readable_after_loop(base, client.get()));
    char byte;
    EXPECT_EQ(read(client.get(), &byte, 1), 0);
    event_base_free(base);
}

}  // namespace
}  // namespace polymur::admin
