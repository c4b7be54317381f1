#include "supervisor/loop_guard.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

#include "common/net.hpp"

namespace polymur {
namespace {

// An address as 16 bytes, IPv4 as v4-mapped IPv6, so both families compare alike.
using Address = std::array<unsigned char, 16>;

bool to_address(const struct sockaddr* sa, Address& out, uint16_t* port = nullptr) {
    out.fill(0);
    if (sa->sa_family == AF_INET) {
        auto* sin = reinterpret_cast<const struct sockaddr_in*>(sa);
        out[10] = out[11] = 0xff;
        std::memcpy(&out[12], &sin->sin_addr, 4);
        if (port) *port = ntohs(sin->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(sa);
        std::memcpy(out.data(), &sin6->sin6_addr, 16);
        if (port) *port = ntohs(sin6->sin6_port);
        return true;
    }
    return false;
}

bool is_wildcard(const Address& a) {
    static const Address any6 {}, any4 {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0};
    return a == any6 || a == any4;
}

// Every address a connection to this host can be made to: loopback, the wildcards (a connect to
// 0.0.0.0 reaches this host) and each interface's.
bool is_this_host(const Address& a) {
    if (is_wildcard(a)) return true;
    if (a[10] == 0xff && a[11] == 0xff && a[12] == 127) return true;
    static const Address loopback6 {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    if (a == loopback6) return true;
    struct ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return false;
    bool found = false;
    for (struct ifaddrs* i = list; i && !found; i = i->ifa_next) {
        Address mine;
        if (i->ifa_addr && to_address(i->ifa_addr, mine)) found = mine == a;
    }
    freeifaddrs(list);
    return found;
}

}  // namespace

bool reaches_own_listener(const std::string& host, uint16_t port, const std::vector<int>& listen_fds,
                          std::string& matched) {
    // Only a listener's port can loop; anything else needs no name resolution on the supervisor's loop.
    bool port_in_use = false;
    for (int fd : listen_fds) {
        struct sockaddr_storage bound = {};
        socklen_t len = sizeof bound;
        Address ignored;
        uint16_t listener_port = 0;
        if (fd >= 0 && getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &len) == 0 &&
            to_address(reinterpret_cast<struct sockaddr*>(&bound), ignored, &listener_port))
            port_in_use |= listener_port == port;
    }
    if (!port_in_use) return false;
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0)
        return false;  // the output will say
    bool loops = false;
    for (int fd : listen_fds) {
        if (fd < 0) continue;
        struct sockaddr_storage bound = {};
        socklen_t len = sizeof bound;
        Address listener;
        uint16_t listener_port = 0;
        if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&bound), &len) != 0 ||
            !to_address(reinterpret_cast<struct sockaddr*>(&bound), listener, &listener_port) || listener_port != port)
            continue;
        for (auto* ai = found; ai && !loops; ai = ai->ai_next) {
            Address target;
            if (!to_address(ai->ai_addr, target)) continue;
            loops = is_wildcard(listener) ? is_this_host(target) : (target == listener || (is_wildcard(target)));
        }
        if (loops) {
            char text[INET6_ADDRSTRLEN] = "?";
            if (bound.ss_family == AF_INET)
                inet_ntop(AF_INET, &reinterpret_cast<struct sockaddr_in*>(&bound)->sin_addr, text, sizeof text);
            else inet_ntop(AF_INET6, &reinterpret_cast<struct sockaddr_in6*>(&bound)->sin6_addr, text, sizeof text);
            matched = (bound.ss_family == AF_INET6 ? "[" + std::string(text) + "]" : std::string(text)) + ":" +
                std::to_string(port);
            break;
        }
    }
    freeaddrinfo(found);
    return loops;
}

}  // namespace polymur
