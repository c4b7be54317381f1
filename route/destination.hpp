// A destination as Graphite carbon writes it: host:port[:instance] or [v6]:port[:instance], with
// an optional scheme in front that says what goes on the wire: pickle:// (carbon's pickle framing,
// for a carbon-cache's PICKLE_RECEIVER_PORT) or tls:// (plaintext lines over TLS). The scheme does
// not take part in hashing: a destination is placed on the ring by host, port and instance alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace polymur::route {

// What a destination's output writes: lines or pickle frames, over TCP or TLS.
enum class Framing : uint8_t { line, pickle };

struct Destination {
    std::string text;  // exactly as the operator wrote it (trimmed), scheme included
    Framing framing = Framing::line;
    bool tls = false;
    std::string host;  // without brackets for IPv6
    uint16_t port = 0;
    std::optional<std::string> instance;  // nullopt = carbon's None; "" is a real (empty) instance

    // "host:port" for connecting and for messages (IPv6 re-bracketed).
    std::string address() const;
};

// Parses like carbon's util.parseDestinations for one entry. On failure returns false and sets
// `error` to a one-line reason that names the input.
bool parse_destination(std::string_view text, Destination& out, std::string& error);

}  // namespace polymur::route
