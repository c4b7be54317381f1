// SIGTERM and SIGINT for a child process, as an owned object: a flag its loop checks and a self-pipe an
// event loop can watch. A forked child cannot use libevent's signal events (the supervisor's event base
// still claims them), so it keeps its own.
#pragma once

#include <atomic>

namespace polymur {

class StopPipe {
public:
    StopPipe();   // makes the pipe (non-blocking, close-on-exec); the signals are not yet routed here
    ~StopPipe();  // stops routing the signals here (they are then ignored) and closes the pipe
    StopPipe(const StopPipe&) = delete;
    StopPipe& operator=(const StopPipe&) = delete;

    bool ok() const { return write_fd_ >= 0; }  // false: the pipe could not be made
    // From now on SIGTERM and SIGINT set requested() and make read_fd() readable.
    void install();
    bool requested() const { return requested_.load(std::memory_order_relaxed); }
    int read_fd() const { return read_fd_; }

    // The handler: sets the installed object's flag and writes one byte to its pipe (nothing when none is
    // installed). It saves and restores errno, since the code it interrupts may be about to read errno (a
    // write to a full pipe fails with EAGAIN).
    static void handler(int signal);

private:
    // A signal handler can reach only static storage, so this is the one static: the installed object's
    // address. Everything the handler does through it is async-signal-safe: loads and stores of lock-free
    // atomics, and write(2).
    static std::atomic<StopPipe*> installed_;

    std::atomic<bool> requested_ {false};
    int read_fd_ = -1;
    int write_fd_ = -1;
};

}  // namespace polymur
