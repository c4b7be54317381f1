// A child's SIGTERM/SIGINT handler: the installed StopPipe's flag and one byte into its pipe, errno left
// as it was.
#include "worker/stop_pipe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>

namespace polymur {
namespace {

TEST(StopPipe, SignalSetsTheFlagWritesOneByteAndLeavesErrnoAlone) {
    {
        StopPipe stop;
        ASSERT_TRUE(stop.ok());
        stop.install();
        EXPECT_FALSE(stop.requested());

        errno = ENOENT;
        ASSERT_EQ(raise(SIGTERM), 0);  // the installed handler runs before raise returns
        EXPECT_EQ(errno, ENOENT);
        EXPECT_TRUE(stop.requested());
        char byte = 0;
        EXPECT_EQ(read(stop.read_fd(), &byte, 1), 1);
        EXPECT_EQ(byte, 'x');
        EXPECT_EQ(read(stop.read_fd(), &byte, 1), -1);  // one byte per signal
        ASSERT_EQ(raise(SIGINT), 0);
        EXPECT_EQ(read(stop.read_fd(), &byte, 1), 1);

        // A full pipe: the handler's write fails with EAGAIN, which must not leak into the code it
        // interrupted.
        ASSERT_GT(fcntl(stop.read_fd(), F_SETPIPE_SZ, 4096), 0);
        for (int i = 0; i < 4096; ++i) ASSERT_EQ(raise(SIGTERM), 0);
        errno = ENOENT;
        StopPipe::handler(SIGINT);
        EXPECT_EQ(errno, ENOENT);
        size_t queued = 0;
        char block[8192];
        for (ssize_t n; (n = read(stop.read_fd(), block, sizeof block)) > 0;) queued += static_cast<size_t>(n);
        EXPECT_EQ(queued, 4096u);
    }
    // Destroyed: the handler reaches nothing, and leaves errno alone.
    errno = EINTR;
    StopPipe::handler(SIGTERM);
    EXPECT_EQ(errno, EINTR);
    ASSERT_EQ(raise(SIGTERM), 0);  // still routed to the handler, which does nothing: the test goes on

    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
}

TEST(StopPipe, OnlyTheInstalledObjectIsSignalled) {
    StopPipe first, second;
    first.install();
    second.install();
    ASSERT_EQ(raise(SIGTERM), 0);
    EXPECT_FALSE(first.requested());
    EXPECT_TRUE(second.requested());
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
}

}  // namespace
}  // namespace polymur
