#include "supervisor/leftovers.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/log.hpp"

namespace polymur {
namespace {

struct Leftover {
    pid_t pid;
    std::string title;
    std::string file;
};

std::string title_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
    std::string title;
    std::getline(in, title, '\0');
    return title;
}

// Gone, or a zombie its new parent has not reaped yet (a zombie holds no socket and no lock).
bool is_gone(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    if (!std::getline(in, stat)) return true;
    size_t paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] == 'Z' || stat[paren + 2] == 'X';
}

// The processes holding a flock on a listener or queue file of `state_dir`, read from /proc/locks.
std::vector<Leftover> holders(const std::string& state_dir) {
    std::map<std::string, std::string> files;  // "maj:min:inode" as /proc/locks writes it -> path
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(state_dir, ec)) {
        const std::string name = entry.path().filename().string();
        const bool listener_lock = name.rfind("listener-", 0) == 0 && entry.path().extension() == ".lock";
        if (!listener_lock && entry.path().extension() != ".queue") continue;
        struct stat st = {};
        if (stat(entry.path().c_str(), &st) != 0) continue;
        char key[64];
        std::snprintf(key, sizeof key, "%02x:%02x:%llu", major(st.st_dev), minor(st.st_dev),
                      static_cast<unsigned long long>(st.st_ino));
        files[key] = entry.path().string();
    }
    std::vector<Leftover> found;
    std::ifstream locks("/proc/locks");
    std::string line;
    while (std::getline(locks, line)) {
        std::istringstream fields(line);
        std::string id, kind, advisory, mode, where;
        long pid = 0;
        if (!(fields >> id >> kind) || kind != "FLOCK") continue;  // "->" lines are waiters, not holders
        if (!(fields >> advisory >> mode >> pid >> where) || pid <= 0 || pid == getpid()) continue;
        auto file = files.find(where);
        if (file == files.end()) continue;
        std::string title = title_of(static_cast<pid_t>(pid));
        if (title.rfind("polymur: listener", 0) != 0 && title.rfind("polymur: output", 0) != 0) continue;
        found.push_back({static_cast<pid_t>(pid), title, file->second});
    }
    return found;
}

}  // namespace

int end_previous_generation(const std::string& state_dir, int grace_ms) {
    std::vector<Leftover> left = holders(state_dir);
    if (left.empty()) return 0;
    std::set<pid_t> pids;
    for (const Leftover& l : left) {
        if (!pids.insert(l.pid).second) continue;
        LOG_WARN("state directory %s: pid %d (%s) of a previous polymur still holds %s; ending it", state_dir.c_str(),
                 l.pid, l.title.c_str(), l.file.c_str());
        kill(l.pid, SIGTERM);
        kill(l.pid, SIGCONT);  // a stopped process handles its SIGTERM only once it runs
    }
    const int64_t deadline = monotonic_ms() + grace_ms;
    auto all_gone = [&] {
        for (pid_t pid : pids)
            if (!is_gone(pid)) return false;
        return true;
    };
    while (!all_gone() && monotonic_ms() < deadline) usleep(20000);
    for (pid_t pid : pids) {
        if (is_gone(pid)) continue;
        // Still ours? The lock it holds says so; only then the hard way.
        bool still_holds = false;
        for (const Leftover& l : holders(state_dir)) still_holds |= l.pid == pid;
        if (!still_holds) continue;
        LOG_WARN("state directory %s: pid %d did not exit within %d ms of SIGTERM; killing it", state_dir.c_str(), pid,
                 grace_ms);
        kill(pid, SIGKILL);
    }
    const int64_t kill_deadline = monotonic_ms() + 2000;
    while (!all_gone() && monotonic_ms() < kill_deadline) usleep(20000);
    return static_cast<int>(pids.size());
}

}  // namespace polymur
