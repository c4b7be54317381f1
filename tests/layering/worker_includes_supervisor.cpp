// A file of worker/ that reaches into the supervisor: must not build against polymur_worker.
#include "common/heritage.hpp"  // resolves: the fork contract is shared
#include "supervisor/supervisor.hpp"
#include "worker/reroute.hpp"  // resolves: the worker's own directory

int layering_probe_worker() { return 0; }
