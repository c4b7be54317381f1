#include <cctype>
#include <cstdio>

#include "worker/heritage.hpp"

namespace polymur {

std::string queue_path(const std::string& state_dir, const std::string& destination) {
    std::string name;
    uint32_t hash = 2166136261u;  // FNV-1a of the exact text keeps "a:b" and "a_b" apart
    for (unsigned char c : destination) {
        hash = (hash ^ c) * 16777619u;
        name += (std::isalnum(c) || c == '.' || c == '-') ? static_cast<char>(c) : '_';
    }
    // Stay well under NAME_MAX; the hash of the full text keeps shortened names apart.
    if (name.size() > 200) name.resize(200);
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "-%08x.queue", hash);
    return state_dir + "/" + name + suffix;
}

}  // namespace polymur
