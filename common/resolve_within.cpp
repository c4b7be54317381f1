#include "common/resolve_within.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "common/clock.hpp"

namespace polymur {
namespace {

bool is_numeric(const std::string& host) {
    unsigned char address[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host.c_str(), address) == 1 || inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// The child: one lookup, its code written to `fd`, then _exit (nothing of the parent's state runs).
[[noreturn]] void look_up(const std::string& host, int fd) {
    // The parent's handlers (libevent's write to the parent's own signal pipe) are not this process's business.
    for (int signal_number : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD}) signal(signal_number, SIG_DFL);
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* found = nullptr;
    int code = getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (code == 0) freeaddrinfo(found);
    ssize_t ignored = write(fd, &code, sizeof code);
    (void)ignored;
    _exit(0);
}

struct Lookup {
    pid_t pid = -1;
    int fd = -1;
    size_t got = 0;  // bytes of `code` read so far
    int code = kResolveTimedOut;
};

}  // namespace

std::vector<int> resolve_within(const std::vector<std::string>& hosts, int within_ms) {
    std::vector<int> codes(hosts.size(), 0);
    std::vector<Lookup> lookups(hosts.size());
    size_t running = 0;
    for (size_t i = 0; i < hosts.size(); ++i) {
        if (hosts[i].empty() || is_numeric(hosts[i])) continue;
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) {
            codes[i] = EAI_SYSTEM;
            continue;
        }
        const pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            look_up(hosts[i], fds[1]);
        }
        close(fds[1]);
        if (pid < 0) {
            close(fds[0]);
            codes[i] = EAI_SYSTEM;
            continue;
        }
        lookups[i].pid = pid;
        lookups[i].fd = fds[0];
        ++running;
    }
    const int64_t deadline = monotonic_ms() + within_ms;
    while (running) {
        std::vector<struct pollfd> waiting;
        std::vector<size_t> which;
        for (size_t i = 0; i < lookups.size(); ++i) {
            if (lookups[i].fd < 0) continue;
            waiting.push_back({lookups[i].fd, POLLIN, 0});
            which.push_back(i);
        }
        const int64_t left = deadline - monotonic_ms();
        if (left <= 0) break;
        int ready = poll(waiting.data(), waiting.size(), static_cast<int>(left));
        if (ready < 0 && errno == EINTR) continue;  // SIGCHLD, among others: the deadline stands
        if (ready <= 0) break;
        for (size_t k = 0; k < waiting.size(); ++k) {
            if (!waiting[k].revents) continue;
            Lookup& l = lookups[which[k]];
            auto* into = reinterpret_cast<char*>(&l.code) + l.got;
            ssize_t n = read(l.fd, into, sizeof l.code - l.got);
            if (n > 0) l.got += static_cast<size_t>(n);
            if (n > 0 && l.got < sizeof l.code) continue;
            if (n < 0 && errno == EINTR) continue;
            if (l.got < sizeof l.code) l.code = EAI_SYSTEM;  // the child ended without an answer
            close(l.fd);
            l.fd = -1;
            --running;
        }
    }
    for (size_t i = 0; i < lookups.size(); ++i) {
        Lookup& l = lookups[i];
        if (l.pid < 0) continue;
        const bool timed_out = l.fd >= 0;
        if (timed_out) {
            kill(l.pid, SIGKILL);
            close(l.fd);
        }
        while (waitpid(l.pid, nullptr, 0) < 0 && errno == EINTR) {}
        codes[i] = timed_out ? kResolveTimedOut : l.code;
    }
    return codes;
}

std::string describe_resolve_failure(int code, int within_ms) {
    if (code == kResolveTimedOut) {
        char text[64];
        std::snprintf(text, sizeof text, "no answer from the resolver within %.1f s", within_ms / 1000.0);
        return text;
    }
    return gai_strerror(code);
}

}  // namespace polymur
