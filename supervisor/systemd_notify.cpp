#include "supervisor/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "common/unique_fd.hpp"

namespace polymur {

SystemdNotifier::SystemdNotifier() {
    if (const char* path = std::getenv("NOTIFY_SOCKET")) socket_path_ = path;
    const char* usec = std::getenv("WATCHDOG_USEC");
    const char* pid = std::getenv("WATCHDOG_PID");
    if (usec && (!pid || std::strtol(pid, nullptr, 10) == getpid())) watchdog_usec_ = std::strtoull(usec, nullptr, 10);
}

bool SystemdNotifier::notify(const std::string& state) const {
    if (socket_path_.empty()) return false;
    struct sockaddr_un sa = {};
    if (socket_path_.size() >= sizeof sa.sun_path) return false;
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, socket_path_.data(), socket_path_.size());
    if (sa.sun_path[0] == '@') sa.sun_path[0] = '\0';  // abstract namespace
    socklen_t length = static_cast<socklen_t>(offsetof(struct sockaddr_un, sun_path) + socket_path_.size());
    UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return false;
    return sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<struct sockaddr*>(&sa),
                  length) == static_cast<ssize_t>(state.size());
}

}  // namespace polymur
