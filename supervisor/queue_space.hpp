// How much disk the queues of a configuration need, and whether the state directory's file system
// has it: for --check-config, before anything is created.
#pragma once

#include <string>
#include <vector>

#include "common/config.hpp"

namespace polymur {

// One line per destination whose queue the file system cannot hold as configured (what it needs,
// what is free, which destination); empty when everything fits.
std::vector<std::string> check_queue_space(const Config& config);

}  // namespace polymur
