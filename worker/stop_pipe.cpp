#include "worker/stop_pipe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace polymur {

static_assert(std::atomic<StopPipe*>::is_always_lock_free && std::atomic<bool>::is_always_lock_free,
              "the signal handler may touch lock-free atomics only");

std::atomic<StopPipe*> StopPipe::installed_ {nullptr};

StopPipe::StopPipe() {
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
        read_fd_ = fds[0];
        write_fd_ = fds[1];
    }
}

StopPipe::~StopPipe() {
    // First no handler reaches this object, then its pipe goes.
    StopPipe* self = this;
    installed_.compare_exchange_strong(self, nullptr);
    if (read_fd_ >= 0) close(read_fd_);
    if (write_fd_ >= 0) close(write_fd_);
}

void StopPipe::install() {
    installed_.store(this);
    struct sigaction sa = {};
    sa.sa_handler = handler;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
}

void StopPipe::handler(int) {
    const int saved_errno = errno;
    if (StopPipe* self = installed_.load()) {
        self->requested_.store(true);
        ssize_t ignored = ::write(self->write_fd_, "x", 1);
        (void)ignored;
    }
    errno = saved_errno;
}

}  // namespace polymur
