#include "common/destination_spec.hpp"

#include <optional>

namespace polymur {

const char* transport_name(DestinationTransport transport) {
    switch (transport) {
        case DestinationTransport::tcp: return "tcp";
        case DestinationTransport::https: return "https";
    }
    return "?";
}

shm::DestinationType shm_destination_type(const DestinationSpec* spec) {
    if (!spec) return shm::DestinationType::console;
    switch (spec->transport) {
        case DestinationTransport::tcp: return shm::DestinationType::tcp;
        case DestinationTransport::https: return shm::DestinationType::https;
    }
    return shm::DestinationType::tcp;
}

DestinationTransport transport_of(std::string_view text) {
    return text.rfind("https://", 0) == 0 ? DestinationTransport::https : DestinationTransport::tcp;
}

bool parse_destination_spec(std::string_view text, DestinationSpec& out, std::string& error) {
    DestinationSpec spec;
    spec.transport = transport_of(text);
    switch (spec.transport) {
        case DestinationTransport::tcp:
            if (!route::parse_destination(text, spec.endpoint, error)) return false;
            break;
        case DestinationTransport::https: {
            if (!net::parse_https_url(text, spec.https, error)) return false;
            spec.endpoint.text = std::string(text);
            spec.endpoint.host = spec.https.host;
            std::optional<uint16_t> port = net::parse_port(spec.https.port, net::PortUse::connect);
            spec.endpoint.port = port.value_or(0);  // parse_https_url checked it
            break;
        }
    }
    out = std::move(spec);
    return true;
}

}  // namespace polymur
