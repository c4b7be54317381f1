#include "common/net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace polymur::net {

std::string printable(std::string_view text, size_t max) {
    static const char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : text.substr(0, max)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    if (text.size() > max) out += "...";
    return out;
}

// Built by appending: GCC 12 at -O3 warns (-Wrestrict, a false positive) on "literal" + a
// temporary std::string.
std::string quoted(std::string_view prefix, std::string_view text) {
    std::string out(prefix);
    out += '\'';
    out += printable(text);
    out += '\'';
    return out;
}

std::optional<uint16_t> parse_port(std::string_view text, PortUse use) {
    if (text.empty() || text.size() > 5) return std::nullopt;
    uint32_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value > 65535 || (value == 0 && use == PortUse::connect)) return std::nullopt;
    return static_cast<uint16_t>(value);
}

std::string host_problem(std::string_view host) {
    for (unsigned char c : host)
        if (c <= 0x20 || c >= 0x7f) return "the host has a space, control or non-ASCII byte";
    if (host.size() > 253) return "the host is longer than 253 characters";
    size_t label = 0;
    for (char c : host) {
        label = c == '.' ? 0 : label + 1;
        if (label > 63) return "a label of the host (between dots) is longer than 63 characters";
    }
    return "";
}

bool split_host_port(std::string_view text, std::string& host, std::string& port, std::string& error, PortUse use) {
    const std::string where = quoted("address ", text);
    std::string_view host_text, port_text;
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find(']');
        if (close == std::string_view::npos || close == 1 || close + 1 >= text.size() || text[close + 1] != ':') {
            error = where + ": expected [ipv6-address]:port";
            return false;
        }
        host_text = text.substr(1, close - 1);
        port_text = text.substr(close + 2);
        if (host_text.find_first_of("[]") != std::string_view::npos) {
            error = where + ": expected [ipv6-address]:port";
            return false;
        }
    } else {
        size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            error = where + ": expected host:port";
            return false;
        }
        host_text = text.substr(0, colon);
        port_text = text.substr(colon + 1);
        if (host_text.find_first_of("[]:") != std::string_view::npos) {
            error = where + ": expected host:port, or [ipv6-address]:port with the brackets";
            return false;
        }
    }
    if (!parse_port(port_text, use)) {
        error = where + ": bad port '" + printable(port_text, 32) + "' (expected " +
            (use == PortUse::listen ? "0-65535" : "1-65535") + ")";
        return false;
    }
    if (host_text.empty() && use == PortUse::connect) {
        error = where + ": empty host";
        return false;
    }
    if (std::string why = host_problem(host_text); !why.empty()) {
        error = where + ": " + why;
        return false;
    }
    host = std::string(host_text);
    port = std::string(port_text);
    return true;
}

bool parse_https_url(std::string_view text, HttpsUrl& url, std::string& error) {
    const std::string where = quoted("destination ", text);
    constexpr std::string_view scheme = "https://";
    if (text.substr(0, scheme.size()) != scheme) {
        error = where + ": expected https://host:port[/path]";
        return false;
    }
    std::string_view rest = text.substr(scheme.size());
    size_t slash = rest.find('/');
    std::string_view authority = rest.substr(0, slash);
    std::string_view base = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    while (!base.empty() && base.back() == '/') base.remove_suffix(1);
    for (unsigned char c : base)
        if (c <= 0x20 || c >= 0x7f) {
            error = where + ": the URL path has a space, control or non-ASCII byte";
            return false;
        }
    std::string why;
    if (!split_host_port(authority, url.host, url.port, why, PortUse::connect)) {
        error = where + ": expected https://host:port[/path]: " + why;
        return false;
    }
    url.authority = std::string(authority);
    url.path = std::string(base) + "/ingest";
    return true;
}

namespace {

// Binds the first address `address` resolves to that takes it; `ready` finishes the socket
// (listen, options) and says whether it worked.
template <typename Ready>
UniqueFd bind_address(std::string_view address, int socktype, std::string& error, Ready&& ready) {
    std::string host, port;
    if (!split_host_port(address, host, port, error)) return UniqueFd();
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = AI_PASSIVE;
    struct addrinfo* found = nullptr;
    int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        error = "address '" + std::string(address) + "': " + gai_strerror(rc);
        return UniqueFd();
    }
    UniqueFd result;
    for (auto* ai = found; ai; ai = ai->ai_next) {
        UniqueFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) continue;
        int one = 1;
        setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ready(fd.get())) {
            result = std::move(fd);
            break;
        }
        error = "address '" + std::string(address) + "': " + std::strerror(errno);
    }
    freeaddrinfo(found);
    return result;
}

}  // namespace

UniqueFd listen_tcp(std::string_view address, int backlog, std::string& error) {
    return bind_address(address, SOCK_STREAM, error, [&](int fd) { return listen(fd, backlog) == 0; });
}

UniqueFd bind_udp(std::string_view address, int receive_buffer, int& effective_buffer, std::string& error) {
    return bind_address(address, SOCK_DGRAM, error, [&](int fd) {
        // SO_RCVBUFFORCE passes net.core.rmem_max when we may (CAP_NET_ADMIN); SO_RCVBUF is capped by it.
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer, sizeof receive_buffer) != 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
        socklen_t len = sizeof effective_buffer;
        effective_buffer = 0;
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &effective_buffer, &len);
        int one = 1;  // every datagram carries the socket's count of datagrams the kernel dropped
        return setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one) == 0;
    });
}

UniqueFd listen_unix(const std::string& path, int backlog, std::string& error) {
    struct sockaddr_un sa = {};
    if (path.size() >= sizeof sa.sun_path) {
        error = "unix socket '" + path + "': path too long";
        return UniqueFd();
    }
    UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    struct stat st = {};
    if (lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(path.c_str());
    // Created 0660 from the start, so there is no moment where anyone may connect.
    mode_t old_mask = umask(0117);
    int rc = bind(fd.get(), reinterpret_cast<struct sockaddr*>(&sa), sizeof sa);
    umask(old_mask);
    if (rc != 0 || listen(fd.get(), backlog) != 0) {
        error = "unix socket '" + path + "': " + std::strerror(errno);
        return UniqueFd();
    }
    return fd;
}

bool is_loopback(int fd) {
    struct sockaddr_storage ss = {};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return false;
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const struct sockaddr_in*>(&ss);
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
        if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr)) return true;
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) return sin6->sin6_addr.s6_addr[12] == 127;
        return false;
    }
    return ss.ss_family == AF_UNIX;
}

std::string peer_name(int fd) {
    struct sockaddr_storage ss = {};
    socklen_t len = sizeof ss;
    if (getpeername(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return "unknown";
    return address_name(ss);
}

std::string local_name(int fd) {
    struct sockaddr_storage ss = {};
    socklen_t len = sizeof ss;
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) != 0) return "unknown";
    return address_name(ss);
}

std::string address_name(const struct sockaddr_storage& ss) {
    char host[INET6_ADDRSTRLEN] = "?";
    char name[INET6_ADDRSTRLEN + 16];
    if (ss.ss_family == AF_INET) {
        auto* sin = reinterpret_cast<const struct sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
        std::snprintf(name, sizeof name, "%s:%u", host, static_cast<unsigned>(ntohs(sin->sin_port)));
        return name;
    }
    if (ss.ss_family == AF_INET6) {
        auto* sin6 = reinterpret_cast<const struct sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
        std::snprintf(name, sizeof name, "[%s]:%u", host, static_cast<unsigned>(ntohs(sin6->sin6_port)));
        return name;
    }
    return "local";
}

UniqueFd connect_tcp(const std::string& host, const std::string& port, int timeout_ms, std::string& error) {
    struct addrinfo hints = {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* found = nullptr;
    int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        error = std::string("resolve failed: ") + gai_strerror(rc);
        return UniqueFd();
    }
    UniqueFd result;
    for (auto* ai = found; ai && !result; ai = ai->ai_next) {
        UniqueFd fd(socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) {
            error = std::strerror(errno);
            continue;
        }
        if (connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                error = std::strerror(errno);
                continue;
            }
            struct pollfd pfd = {fd.get(), POLLOUT, 0};
            rc = poll(&pfd, 1, timeout_ms);
            if (rc == 0) {
                error = "connect timed out";
                continue;
            }
            int soerr = 0;
            socklen_t len = sizeof soerr;
            getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
            if (rc < 0 || soerr != 0) {
                error = std::strerror(rc < 0 ? errno : soerr);
                continue;
            }
        }
        int one = 1;
        setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        result = std::move(fd);
    }
    freeaddrinfo(found);
    return result;
}

}  // namespace polymur::net
