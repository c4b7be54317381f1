// Refuses a destination that is the relay itself: a putdest of its own listener would send every
// line back in, copied again on every pass, without end.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace polymur {

// True when `host`:`port` (a name is resolved) reaches one of the listening sockets `listen_fds`:
// the same address, or any address of this host when the listener is bound to 0.0.0.0 or ::.
// `matched` names the listener.
bool reaches_own_listener(const std::string& host, uint16_t port, const std::vector<int>& listen_fds,
                          std::string& matched);

}  // namespace polymur
