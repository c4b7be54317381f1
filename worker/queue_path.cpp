#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "common/heritage.hpp"
#include "common/log.hpp"

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

UniqueFd lock_file(const std::string& path, const std::string& who) {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd) {
        LOG_ERROR("%s: cannot open lock %s: %s", who.c_str(), path.c_str(), std::strerror(errno));
        return fd;
    }
    bool said = false;
    while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            LOG_ERROR("%s: cannot lock %s: %s", who.c_str(), path.c_str(), std::strerror(errno));
            return UniqueFd();
        }
        if (!said) LOG_NOTICE("%s: waiting for the previous holder of %s to exit", who.c_str(), path.c_str());
        said = true;
        usleep(50000);
    }
    return fd;
}

std::unique_ptr<shm::QueueFile> attach_output_queue(const Heritage& heritage, const std::string& destination,
                                                    UniqueFd& lock, int& exit_code) {
    std::string error;
    auto queue = shm::QueueFile::open(queue_path(heritage.config->state_dir, destination), error);
    if (!queue) {
        LOG_ERROR("destination %s: %s", destination.c_str(), error.c_str());
        exit_code = kExitDoNotRestart;
        return nullptr;
    }
    heritage.control->destinations[heritage.index].output_pid = static_cast<uint32_t>(getpid());
    lock = lock_file(queue->path(), "output of " + destination);
    if (!lock) {
        exit_code = kExitCrashed;
        return nullptr;
    }
    return queue;
}

}  // namespace polymur
