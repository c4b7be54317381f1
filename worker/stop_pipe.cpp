#include "worker/stop_pipe.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace polymur {
namespace {
volatile sig_atomic_t g_stop_pipe = -1;
}

void stop_pipe_handler(int) {
    const int saved_errno = errno;
    ssize_t ignored = ::write(g_stop_pipe, "x", 1);
    (void)ignored;
    errno = saved_errno;
}

void install_stop_pipe(int write_fd) {
    g_stop_pipe = write_fd;
    struct sigaction sa = {};
    sa.sa_handler = stop_pipe_handler;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
}

}  // namespace polymur
