// Socket helpers shared by the supervisor (binding) and the output processes (connecting).
#pragma once

#include <sys/socket.h>

#include <cerrno>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"

namespace polymur::net {

// Whether a port may be 0: a listen address may ask the kernel for any port, a destination may not.
enum class PortUse { listen, connect };

// A TCP port written in decimal (ASCII digits only, no sign, no spaces): 1-65535, or 0 for a
// listen address. Bounded: "99999999999999999999" is refused, not converted.
std::optional<uint16_t> parse_port(std::string_view text, PortUse use);

// Why `host` cannot be a host name or address, or "" when it can: printable ASCII only (no
// control bytes, escape sequences or spaces; they would reach logs, files and process titles),
// at most 253 characters and 63 per dot-separated label (DNS limits).
std::string host_problem(std::string_view host);

// Splits "host:port", "[v6]:port" or ":port" (any address; a listen address only). The port is
// checked with parse_port and the host with host_problem; an IPv6 address needs its brackets.
// Returns false with a one-line `error` that quotes the input with non-printables escaped.
bool split_host_port(std::string_view text, std::string& host, std::string& port, std::string& error,
                     PortUse use = PortUse::listen);

// An https:// destination: https://host:port[/path]; requests go to <path>/ingest.
struct HttpsUrl {
    std::string host, port;
    std::string authority;  // host:port as written, for the Host header
    std::string path;       // "<path>/ingest"
};
bool parse_https_url(std::string_view text, HttpsUrl& url, std::string& error);

// `text` for a log line or an error message: printable ASCII as is, every other byte as \xNN,
// cut after `max` bytes ("..." follows).
std::string printable(std::string_view text, size_t max = 256);

// `prefix` followed by printable(text) in single quotes, for error messages.
std::string quoted(std::string_view prefix, std::string_view text);

// Binds and listens on a TCP address; the socket is non-blocking and close-on-exec.
UniqueFd listen_tcp(std::string_view address, int backlog, std::string& error);

// Binds a UDP socket (non-blocking, close-on-exec) with a receive buffer of `receive_buffer` bytes
// (forced past net.core.rmem_max when the process may) and SO_RXQ_OVFL on; `effective_buffer` is
// what the kernel granted (it doubles the request for its bookkeeping).
UniqueFd bind_udp(std::string_view address, int receive_buffer, int& effective_buffer, std::string& error);

// Binds and listens on a unix socket path (an old socket file is replaced), mode 0660.
UniqueFd listen_unix(const std::string& path, int backlog, std::string& error);

// True if the bound address of `fd` is a loopback address.
bool is_loopback(int fd);

// "ip:port" of a connected peer, for log lines.
std::string peer_name(int fd);
// "ip:port" a socket is bound to (the port the kernel chose for port 0); "unknown" on error.
std::string local_name(int fd);
// host:port or [v6]:port of an address.
std::string address_name(const struct sockaddr_storage& address);
// Whether accept() failed for want of descriptors or kernel memory: the connection stays in the backlog and
// the listening socket readable, so a listener must pause rather than wait on it again at once.
inline bool accept_shortage(int error) {
    return error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
}

// Blocking connect with a timeout; returns a non-blocking connected socket or an invalid fd.
UniqueFd connect_tcp(const std::string& host, const std::string& port, int timeout_ms, std::string& error);

}  // namespace polymur::net
