// Every way polymur reads a destination or an address an operator or admin client gives it: host:port
// (common/net), host:port[:instance] (route/destination) and https://host:port[/path] (the proxy's
// gateway, and both through common/destination_spec), as the supervisor does for putdest, --destinations
// and --listen-addr.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

#include "common/destination_spec.hpp"
#include "common/net.hpp"
#include "route/destination.hpp"

namespace polymur::fuzz {

inline void parse_destination_every_way(std::string_view text) {
    std::string host, port, error;
    if (net::split_host_port(text, host, port, error)) {
        if (port.empty()) std::abort();
    } else if (error.empty()) {
        std::abort();  // a refusal always says why
    }
    route::Destination destination;
    error.clear();
    if (route::parse_destination(text, destination, error)) {
        destination.address();
        // The wire it parsed is the scheme written: the one spelling of it.
        const std::string scheme = route::wire_scheme(destination.wire);
        if (!scheme.empty() && destination.text.rfind(scheme + "://", 0) != 0) std::abort();
        if (destination.wire.framing == route::Framing::pickle &&
            destination.wire.compression != protocol::Compression::none)
            std::abort();
    } else if (error.empty()) {
        std::abort();
    }
    DestinationSpec spec;
    error.clear();
    if (parse_destination_spec(text, spec, error)) {
        if (spec.transport != transport_of(text)) std::abort();
        if (spec.transport == DestinationTransport::https && (spec.endpoint.port == 0 || spec.https.path.empty()))
            std::abort();
    } else if (error.empty()) {
        std::abort();
    }
}

}  // namespace polymur::fuzz
