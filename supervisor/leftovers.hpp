// A new supervisor for a state directory ends what is left of the previous generation there: a
// child that outlived its supervisor (stopped with SIGSTOP when the supervisor was killed, so its
// parent-death SIGTERM stays pending) would keep the listen socket and its locks for ever.
#pragma once

#include <string>

namespace polymur {

// Called with the state directory's lock held, before any socket is bound. A process is ended only
// when it provably belongs to this state directory: it holds the flock of one of its listener or
// queue files (no one else takes those, and no live polymur can, since we hold the directory's
// lock) and its title is a polymur child's. It gets SIGCONT and SIGTERM (so a listener publishes
// what it holds), and SIGKILL if it is still there after `grace_ms`. Returns how many were ended.
int end_previous_generation(const std::string& state_dir, int grace_ms);

}  // namespace polymur
