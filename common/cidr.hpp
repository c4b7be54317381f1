// IPv4 and IPv6 address ranges ("10.0.0.0/8", "2001:db8::/32", a bare address for one host), for
// --trusted-proxies. An IPv4-mapped IPv6 peer (::ffff:10.1.2.3, from a dual-stack socket) matches
// IPv4 ranges.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace polymur {

struct Cidr {
    sa_family_t family = AF_UNSPEC;  // AF_INET or AF_INET6
    uint8_t bytes[16] = {};          // network address, host bits cleared
    unsigned prefix = 0;             // 0..32 or 0..128
};

// Parses one range; false with `error` set (quoting the input) when it is not one.
bool parse_cidr(std::string_view text, Cidr& out, std::string& error);
// Parses a list; false with `error` naming the first bad entry.
bool parse_cidrs(const std::vector<std::string>& texts, std::vector<Cidr>& out, std::string& error);
// Whether the address of `address` (AF_INET or AF_INET6; anything else: false) is inside `range`.
bool cidr_contains(const Cidr& range, const struct sockaddr* address);
bool any_cidr_contains(const std::vector<Cidr>& ranges, const struct sockaddr* address);

}  // namespace polymur
