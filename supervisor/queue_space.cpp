#include "supervisor/queue_space.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "common/heritage.hpp"
#include "shm/queue.hpp"

namespace polymur {

std::vector<std::string> check_queue_space(const Config& config) {
    std::vector<std::string> destinations = config.destinations;
    if (config.console_out) destinations.insert(destinations.begin(), "console");
    std::ifstream journal(config.state_dir + "/runtime-destinations");
    std::string command, text;
    while (journal >> command >> text) {
        auto at = std::find(destinations.begin(), destinations.end(), text);
        if (command == "putdest" && at == destinations.end()) destinations.push_back(text);
        if (command == "deldest" && at != destinations.end()) destinations.erase(at);
    }
    const uint64_t wanted = shm::queue_file_size(shm::geometry_for(config.workers + 1, config.queue_bytes));
    const uint64_t free_bytes = shm::filesystem_free_bytes(config.state_dir);
    // What each queue still has to allocate: an existing file already holds its blocks.
    std::vector<std::pair<std::string, uint64_t>> needs;
    uint64_t total = 0;
    for (const std::string& d : destinations) {
        struct stat st = {};
        uint64_t have =
            stat(queue_path(config.state_dir, d).c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_blocks) * 512 : 0;
        uint64_t need = wanted > have ? wanted - have : 0;
        if (need) needs.emplace_back(d, need);
        total += need;
    }
    std::vector<std::string> problems;
    if (total <= free_bytes) return problems;
    for (const auto& [destination, need] : needs) {
        char line[512];
        std::snprintf(line, sizeof line,
                      "destination %s: its queue needs %llu more bytes in %s, but only %llu bytes are free there for "
                      "%zu new queue files (%llu needed in all); it would run with a smaller queue",
                      destination.c_str(), static_cast<unsigned long long>(need), config.state_dir.c_str(),
                      static_cast<unsigned long long>(free_bytes), needs.size(),
                      static_cast<unsigned long long>(total));
        problems.emplace_back(line);
    }
    return problems;
}

}  // namespace polymur
