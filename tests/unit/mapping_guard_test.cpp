#include "shm/mapping_guard.hpp"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "shm/queue.hpp"
#include "temp_dir.hpp"

namespace polymur::shm {
namespace {

class MappingGuardTest : public ::testing::Test {
protected:
    void SetUp() override {
        std::string error;
        queue_ = QueueFile::open_or_create(path_, "carbon:2003", {2, 1 << 20}, error);
        ASSERT_TRUE(queue_) << error;
        ASSERT_EQ(queue_->ring(1).write_pos.load(), 0U);
    }

    test::TempDir dir_;  // removed after the queue is unmapped (members are destroyed last first)
    std::string path_ = dir_.path() + "/dest.queue";
    std::unique_ptr<QueueFile> queue_;
};

// The supervisor's way: the lost pages read as zeros, the process goes on, the truncation is counted once.
TEST_F(MappingGuardTest, KeepRunningReadsTheLostPagesAsZerosAndCountsTheFileOnce) {
    guard_queue_mappings(OnTruncatedQueue::keep_running);
    queue_->ring_data(1)[10] = 'x';
    ASSERT_EQ(truncate(path_.c_str(), 4096), 0) << std::strerror(errno);
    const unsigned before = truncated_queue_mappings();
    EXPECT_EQ(queue_->ring_data(1)[10], 0);  // faults, is replaced by a zero page, and reads again
    EXPECT_EQ(queue_->queued_bytes(), 0U);   // the ring positions too (a page before the data)
    queue_->ring_data(0)[0] = 'y';           // writes land in the private page, not in the file
    EXPECT_EQ(queue_->ring_data(0)[0], 'y');
    EXPECT_EQ(truncated_queue_mappings(), before + 1);
    EXPECT_EQ(queue_->header().magic, kQueueMagic);  // the page the file kept is still the file's
}

// A child's way: it exits with the code it was given, naming the file.
TEST_F(MappingGuardTest, ExitProcessExitsWithItsCodeNamingTheFile) {
    GTEST_FLAG_SET(death_test_style, "fast");  // forked: the child uses this test's queue and directory
    EXPECT_EXIT(
        {
            guard_queue_mappings(OnTruncatedQueue::exit_process, 78);
            if (truncate(path_.c_str(), 4096) != 0) _exit(1);
            queue_->ring_data(1)[10] = 'x';
            _exit(2);
        },
        ::testing::ExitedWithCode(78), "queue file " + path_ + " shrank under this process");
}

// A fault outside every registered mapping is not ours: it goes to the handler before (or kills as SIGBUS does).
TEST_F(MappingGuardTest, AFaultOutsideTheQueuesStillKills) {
    GTEST_FLAG_SET(death_test_style, "fast");  // forked: the child uses this test's queue and directory
    const std::string other = dir_.path() + "/other";
    EXPECT_EXIT(
        {
            guard_queue_mappings(OnTruncatedQueue::exit_process, 78);
            FILE* f = std::fopen(other.c_str(), "w+");
            if (!f || ftruncate(fileno(f), 8192) != 0) _exit(1);
            auto* p =
                static_cast<volatile char*>(mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(f), 0));
            if (p == MAP_FAILED || ftruncate(fileno(f), 0) != 0) _exit(1);
            p[4096] = 'x';
            _exit(2);
        },
        // Killed by SIGBUS; in the sanitizer build, the sanitizer's own handler (which it passes on to) reports
        // the fault and exits with its error code instead. Never the guard's code, never going on.
        [](int status) {
            return (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
                (WIFEXITED(status) && WEXITSTATUS(status) != 78 && WEXITSTATUS(status) != 2);
        },
        "");
}

}  // namespace
}  // namespace polymur::shm
