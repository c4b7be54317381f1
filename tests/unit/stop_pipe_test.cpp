// The listener's SIGTERM/SIGINT handler: one byte into the self-pipe, errno left as it was.
#include "worker/stop_pipe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>

namespace polymur {
namespace {

TEST(StopPipe, HandlerWritesOneByteAndLeavesErrnoAlone) {
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    install_stop_pipe(fds[1]);

    errno = ENOENT;
    ASSERT_EQ(raise(SIGTERM), 0);  // the installed handler runs before raise returns
    EXPECT_EQ(errno, ENOENT);
    char byte = 0;
    EXPECT_EQ(read(fds[0], &byte, 1), 1);
    EXPECT_EQ(byte, 'x');

    // A full pipe: the handler's write fails with EAGAIN, which must not leak into the code it
    // interrupted.
    char block[4096] = {};
    while (write(fds[1], block, sizeof block) > 0) {}
    errno = ENOENT;
    stop_pipe_handler(SIGINT);
    EXPECT_EQ(errno, ENOENT);

    // No pipe at all (EBADF).
    install_stop_pipe(-1);
    errno = EINTR;
    stop_pipe_handler(SIGTERM);
    EXPECT_EQ(errno, EINTR);

    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    close(fds[0]);
    close(fds[1]);
}

}  // namespace
}  // namespace polymur
