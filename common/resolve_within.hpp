// Host lookups whose cost to the caller is bounded, for the supervisor's warnings about destinations that do not
// resolve (start, putdest, a cluster change): its event loop must keep turning (admin, /health, children, the
// systemd watchdog) even when the resolver does not answer, which getaddrinfo alone waits out for the
// resolver's timeout times its attempts per name server (10 s or more by default).
#pragma once

#include <string>
#include <vector>

namespace polymur {

// What resolve_within says of a host that was not answered in time.
inline constexpr int kResolveTimedOut = 1 << 30;

// Looks each of `hosts` up as a TCP destination (getaddrinfo, any family), side by side, each in a child
// process of its own (forked, no exec: the caller has one thread), and waits for them at most `within_ms` in
// all; a lookup still running then is ended (SIGKILL). Returns one code per host: 0 it resolves, a getaddrinfo
// error (gai_strerror), or kResolveTimedOut. Numeric addresses are answered without a child.
std::vector<int> resolve_within(const std::vector<std::string>& hosts, int within_ms);

// The words for a code of resolve_within that is not 0.
std::string describe_resolve_failure(int code, int within_ms);

}  // namespace polymur
