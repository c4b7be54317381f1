// A destination as the operator writes it (--destinations, putdest, the runtime journal), parsed once
// into a typed value. Its transport is decided here and only here: how the output process talks to it,
// and whether it is a node of the hash ring (hash-route places lines on tcp destinations only).
#pragma once

#include <string>
#include <string_view>

#include "common/net.hpp"
#include "route/destination.hpp"
#include "shm/control.hpp"

namespace polymur {

// A stream over TCP to a carbon-style receiver (host:port[:instance], with what goes on the wire in
// endpoint.wire: lines or pickle frames, compressed or not, over TLS or not); HTTPS batches to a
// gateway (https://host:port[/path], docs/HTTPS.md).
enum class DestinationTransport { tcp, https };

const char* transport_name(DestinationTransport transport);

// The transport `text` asks for, from its scheme alone (no scheme: tcp); `text` may still not parse.
DestinationTransport transport_of(std::string_view text);

struct DestinationSpec {
    DestinationTransport transport = DestinationTransport::tcp;
    // host, port and (tcp only) carbon's instance; `endpoint.text` is the destination as written.
    route::Destination endpoint;
    net::HttpsUrl https;  // https only: authority and request path

    // A node of the hash ring (hash-route); the other transports mirror every line.
    bool ring_member() const { return transport == DestinationTransport::tcp; }
};

// The destination type shared memory shows the other processes (nullptr: the console).
shm::DestinationType shm_destination_type(const DestinationSpec* spec);

// Parses one destination; false with a one-line `error` naming the input.
bool parse_destination_spec(std::string_view text, DestinationSpec& out, std::string& error);

}  // namespace polymur
