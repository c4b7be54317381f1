#include "common/destination_spec.hpp"

#include <optional>

namespace polymur {

const char* transport_name(Transport transport) {
    switch (transport) {
        case Transport::tcp: return "tcp";
        case Transport::https: return "https";
    }
    return "?";
}

Transport transport_of(std::string_view text) {
    return text.rfind("https://", 0) == 0 ? Transport::https : Transport::tcp;
}

bool parse_destination_spec(std::string_view text, DestinationSpec& out, std::string& error) {
    DestinationSpec spec;
    spec.transport = transport_of(text);
    switch (spec.transport) {
        case Transport::tcp:
            if (!route::parse_destination(text, spec.endpoint, error)) return false;
            break;
        case Transport::https: {
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
