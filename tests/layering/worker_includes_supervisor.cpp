// A file of worker/ that reaches into the supervisor: must not build against polymur_worker.
#include "common/heritage.hpp"  // resolves: the fork contract is shared
#include "worker/reroute.hpp"   // resolves: the worker's own directory
#include "supervisor/supervisor.hpp"

int layering_probe_worker() { return 0; }
