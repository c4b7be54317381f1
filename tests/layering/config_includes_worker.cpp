// A file of common/ (the shared configuration) that reaches into worker/: must not build against polymur_config.
#include "common/config.hpp"  // resolves: its own directory
#include "shm/control.hpp"    // resolves: a library polymur_config links
#include "worker/reroute.hpp"

int layering_probe_config() { return 0; }
