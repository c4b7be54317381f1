// SIGTERM and SIGINT wake an event loop through a self-pipe. A forked child cannot use libevent's
// signal events (the supervisor's event base still claims them), so the listener keeps its own.
#pragma once

namespace polymur {

// The handler: writes one byte to the pipe installed last. It saves and restores errno, since the
// code it interrupts may be about to read errno (a failed write returns EAGAIN or EBADF).
void stop_pipe_handler(int signal);

// Makes SIGTERM and SIGINT call stop_pipe_handler, writing to `write_fd` (non-blocking).
void install_stop_pipe(int write_fd);

}  // namespace polymur
