// Socket helpers shared by the supervisor (binding) and the output processes (connecting).
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

#include "common/unique_fd.hpp"

namespace polymur::net {

// Splits "host:port", "[v6]:port" or ":port" (any address). Returns false with `error` set.
bool split_host_port(std::string_view text, std::string& host, std::string& port, std::string& error);

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
// host:port or [v6]:port of an address.
std::string address_name(const struct sockaddr_storage& address);

// Blocking connect with a timeout; returns a non-blocking connected socket or an invalid fd.
UniqueFd connect_tcp(const std::string& host, const std::string& port, int timeout_ms, std::string& error);

}  // namespace polymur::net
