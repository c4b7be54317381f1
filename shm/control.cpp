#include "shm/control.hpp"

#include <unistd.h>

#include <new>

#include "common/clock.hpp"

namespace polymur::shm {

const char* link_state_name(LinkState state) {
    switch (state) {
        case LinkState::starting: return "starting";
        case LinkState::connecting: return "connecting";
        case LinkState::connected: return "connected";
        case LinkState::down: return "down";
        case LinkState::stopped: return "stopped";
    }
    return "unknown";
}

ControlSegment* init_control(void* memory, uint32_t worker_count) {
    auto* control = new (memory) ControlSegment();
    control->header.magic = kControlMagic;
    control->header.layout_version = kControlLayoutVersion;
    control->header.layout_size = sizeof(ControlSegment);
    control->header.creator_pid = static_cast<uint32_t>(getpid());
    control->header.worker_count = worker_count;
    control->header.start_unix_ns = realtime_ns();
    control->header.reroute_slot.store(kNoSlot);
    return control;
}

bool control_is_valid(const ControlSegment* control) {
    return control && control->header.magic == kControlMagic &&
        control->header.layout_version == kControlLayoutVersion &&
        control->header.layout_size == sizeof(ControlSegment);
}

}  // namespace polymur::shm
