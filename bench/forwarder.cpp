// polymur-forwarder: the machine's reference for a relay that does no work at all (docs/PERFORMANCE.md,
// "How far from the machine's limit"). It accepts connections and moves each one's bytes, through a kernel
// pipe, into connections to the destinations with splice(2): no parsing, no copy into user space, no queue.
//
//   polymur-forwarder [--copy] LISTEN_PORT mirror|spread DEST_PORT...
//
// --copy: read(2) each connection's bytes into a 64 KiB buffer and write(2) them to each destination instead
//         of splicing: what any relay that looks at its bytes pays at the least (the kernel's copy into user
//         space and out again, as polymur's listener reads and its output writes), still with no parsing and
//         no queue.
//
// mirror: every connection's bytes go to every destination (tee(2) into one pipe per extra destination), as
//         polymur's broadcast does.
// spread: connection i goes whole to destination i mod N: the same total as hash routing over N
//         destinations, without deciding anything per line.
// One thread per connection; destinations are on 127.0.0.1. It runs until killed.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kPipeBytes = 1 << 20;

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "polymur-forwarder: %s: %s\n", what, std::strerror(errno));
    std::exit(1);
}

int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("connect to a destination");
    return fd;
}

struct Pipe {
    int r = -1, w = -1;
    Pipe() {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC) != 0) die("pipe");
        r = fds[0];
        w = fds[1];
        if (fcntl(w, F_SETPIPE_SZ, static_cast<int>(kPipeBytes)) < 0) die("F_SETPIPE_SZ");
    }
};

// Moves exactly `n` bytes from the pipe into `out`.
bool drain(const Pipe& p, int out, size_t n) {
    while (n > 0) {
        ssize_t moved = splice(p.r, nullptr, out, nullptr, n, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (moved < 0 && errno == EINTR) continue;
        if (moved <= 0) return false;
        n -= static_cast<size_t>(moved);
    }
    return true;
}

bool write_all(int out, const char* p, size_t n) {
    while (n > 0) {
        ssize_t wrote = write(out, p, n);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return false;
        p += wrote;
        n -= static_cast<size_t>(wrote);
    }
    return true;
}

// --copy: through user space, 64 KiB at a time (polymur's listener reads that much).
void forward_copying(int in, const std::vector<int>& outs) {
    constexpr size_t kReadBytes = 64 * 1024;
    std::vector<char> buf(kReadBytes);
    for (;;) {
        ssize_t got = read(in, buf.data(), buf.size());
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        for (int out : outs)
            if (!write_all(out, buf.data(), static_cast<size_t>(got))) die("write to a destination");
    }
    close(in);
    for (int fd : outs) close(fd);
}

void forward(int in, std::vector<int> outs) {
    std::vector<Pipe> pipes(outs.size());
    for (;;) {
        ssize_t got = splice(in, nullptr, pipes[0].w, nullptr, kPipeBytes, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        size_t n = static_cast<size_t>(got);
        // tee duplicates the pipe's pages (references, not copies) into each other destination's pipe. It
        // always starts at the head of pipe 0, so it must take all n bytes at once: the target pipe is empty
        // and as large as pipe 0, so a short tee would be a broken assumption, not back-pressure.
        for (size_t i = 1; i < pipes.size(); ++i) {
            ssize_t teed;
            do {
                teed = tee(pipes[0].r, pipes[i].w, n, 0);
            } while (teed < 0 && errno == EINTR);
            if (teed != got) die("tee");
            if (!drain(pipes[i], outs[i], n)) die("splice to a destination");
        }
        if (!drain(pipes[0], outs[0], n)) die("splice to a destination");
    }
    close(in);
    for (int fd : outs) close(fd);
}

}  // namespace

int main(int argc, char** argv) {
    const bool copy = argc > 1 && std::strcmp(argv[1], "--copy") == 0;
    if (copy) --argc, ++argv;
    if (argc < 4 || (std::strcmp(argv[2], "mirror") != 0 && std::strcmp(argv[2], "spread") != 0)) {
        std::fprintf(stderr, "usage: polymur-forwarder [--copy] LISTEN_PORT mirror|spread DEST_PORT...\n");
        return 2;
    }
    const bool mirror = std::strcmp(argv[2], "mirror") == 0;
    std::vector<int> dests;
    for (int i = 3; i < argc; ++i) dests.push_back(std::atoi(argv[i]));

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa {};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("bind");
    if (listen(listener, 1024) != 0) die("listen");

    for (size_t accepted = 0;; ++accepted) {
        int in = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        if (in < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            die("accept");
        }
        std::vector<int> outs;
        if (mirror) {
            for (int port : dests) outs.push_back(connect_to(port));
        } else {
            outs.push_back(connect_to(dests[accepted % dests.size()]));
        }
        if (copy) std::thread(forward_copying, in, std::move(outs)).detach();
        else std::thread(forward, in, std::move(outs)).detach();
    }
}
