// What a process does when a queue file shrinks under its mapping.
//
// A queue file is mapped whole; if something truncates it while polymur runs (an operator, a full-disk
// cleanup script, a restored backup), the next load or store to a page past the new end raises SIGBUS,
// which by default kills the process without a word, and for the supervisor the whole relay. With the
// guard installed, a fault inside a registered queue mapping is reported with the file's name and:
//   - a reader of the queue (its output, the aggregator) exits with the code given (kExitDoNotRestart), as it
//     would at its next start, where the truncated file is refused: the supervisor does not restart it;
//   - the supervisor and the listeners carry on: the lost pages are replaced by private zero pages (the
//     supervisor's figures for that queue read as empty; what a listener writes there goes nowhere, that
//     destination's lines being lost from then on) and every other destination keeps being served.
// A fault anywhere else goes to the handler that was there before (a sanitizer's) or kills as before.
#pragma once

#include <cstddef>
#include <string>

namespace polymur::shm {

enum class OnTruncatedQueue { exit_process, keep_running };

// Installs the SIGBUS handler (once per process; a second call only changes what it does). `exit_code` is
// the exit_process action's; `carrying_on` ends keep_running's log line (what this process does now).
void guard_queue_mappings(OnTruncatedQueue action, int exit_code = 0,
                          const char* carrying_on = "this process carries on");

// QueueFile: `size` bytes at `base` are the mapping of queue file `path`, until unregistered.
void register_queue_mapping(const void* base, size_t size, const std::string& path);
void unregister_queue_mapping(const void* base);

// How many registered mappings were found truncated in this process (each counted once).
unsigned truncated_queue_mappings();

}  // namespace polymur::shm
