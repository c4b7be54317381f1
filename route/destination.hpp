// A destination as Graphite carbon writes it: host:port[:instance] or [v6]:port[:instance], with
// an optional scheme in front that says what goes on the wire (Wire): pickle:// (carbon's pickle
// framing, for a carbon-cache's PICKLE_RECEIVER_PORT), gzip:// or lz4:// (a compressed line stream,
// carbon-c-relay's `transport gzip|lz4`), tls:// (TLS), or several of them joined by '+' in that
// order, inner layer first: gzip+tls://, lz4+tls://, pickle+tls://. The scheme does not take part in
// hashing: a destination is placed on the ring by host, port and instance alone.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/stream_codec.hpp"

namespace polymur::route {

// What a destination's output writes: lines or pickle frames, optionally compressed, over TCP or TLS.
enum class Framing : uint8_t { line, pickle };

struct Wire {
    Framing framing = Framing::line;
    protocol::Compression compression = protocol::Compression::none;
    bool tls = false;

    bool plain() const { return framing == Framing::line && compression == protocol::Compression::none && !tls; }
    bool operator==(const Wire&) const = default;
};

// The scheme that writes `wire` ("" for plain lines, else e.g. "gzip+tls").
std::string wire_scheme(const Wire& wire);

struct Destination {
    std::string text;  // exactly as the operator wrote it (trimmed), scheme included
    Wire wire;
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
