// No exception may unwind through libevent (C code without unwind tables: the process would
// terminate) or leave a forked child's entry point. Every callback body runs inside guarded():
// whatever escapes is logged as one line and the process carries on.
#pragma once

#include <exception>
#include <new>

#include "common/log.hpp"
#include "common/net.hpp"

namespace polymur {

// Runs `body()`; returns false (after logging "<where>: unexpected error: ...") if it threw.
template <typename Body>
bool guarded(const char* where, Body&& body) noexcept {
    try {
        body();
        return true;
    } catch (const std::bad_alloc&) {
        LOG_ERROR("%s: out of memory; carrying on", where);
    } catch (const std::exception& e) {
        try {
            LOG_ERROR("%s: unexpected error: %s; carrying on", where, net::printable(e.what()).c_str());
        } catch (...) {
            LOG_ERROR("%s: unexpected error; carrying on", where);
        }
    } catch (...) {
        LOG_ERROR("%s: unexpected error; carrying on", where);
    }
    return false;
}

}  // namespace polymur
