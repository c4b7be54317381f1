// systemd's notify protocol (Type=notify): datagrams to $NOTIFY_SOCKET, without libsystemd.
#pragma once

#include <cstdint>
#include <string>

namespace polymur {

class SystemdNotifier {
public:
    // Reads NOTIFY_SOCKET and WATCHDOG_USEC (honoured only when WATCHDOG_PID is unset or ours).
    SystemdNotifier();

    bool enabled() const { return !socket_path_.empty(); }
    // Sends `state` ("READY=1", "STATUS=...", ...); false if there is no socket or it failed.
    bool notify(const std::string& state) const;
    // Microseconds between WATCHDOG=1 pings systemd expects (0: no watchdog).
    uint64_t watchdog_usec() const { return watchdog_usec_; }

private:
    std::string socket_path_;
    uint64_t watchdog_usec_ = 0;
};

}  // namespace polymur
