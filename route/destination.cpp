#include "route/destination.hpp"

#include "common/net.hpp"

namespace polymur::route {

namespace {

// The ASCII characters Python's str.strip() and int() treat as whitespace (\x1c-\x1f included).
bool is_python_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= '\x1c' && c <= '\x1f'); }

std::string_view strip(std::string_view s) {
    while (!s.empty() && is_python_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_python_space(s.back())) s.remove_suffix(1);
    return s;
}

// Python's int(s) for base 10, restricted to ASCII: surrounding whitespace, an optional sign,
// digits with single underscores between them. Anything above 65535 is reported as 65536.
bool parse_python_int(std::string_view s, long& value) {
    s = strip(s);
    bool negative = false;
    if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
        negative = s.front() == '-';
        s.remove_prefix(1);
    }
    if (s.empty() || s.front() == '_' || s.back() == '_') return false;
    long v = 0;
    char previous = 0;
    for (char c : s) {
        if (c == '_') {
            if (previous == '_') return false;
        } else if (c >= '0' && c <= '9') {
            v = v > 65535 ? 65536 : v * 10 + (c - '0');
        } else {
            return false;
        }
        previous = c;
    }
    value = negative ? -v : v;
    return true;
}

// The scheme's parts, '+'-separated, each at most once and in the order pickle, gzip|lz4, tls.
bool parse_scheme(std::string_view scheme, Wire& wire, std::string& why) {
    int last = -1;  // the layer of the previous part: 0 framing, 1 compression, 2 tls
    while (true) {
        const size_t plus = scheme.find('+');
        const std::string_view part = scheme.substr(0, plus);
        int layer;
        if (part == "pickle") {
            layer = 0;
            wire.framing = Framing::pickle;
        } else if (part == "gzip" || part == "lz4") {
            layer = 1;
            wire.compression = part == "gzip" ? protocol::Compression::gzip : protocol::Compression::lz4;
        } else if (part == "tls") {
            layer = 2;
            wire.tls = true;
        } else {
            why = "unknown scheme '" + net::printable(part, 32) + "'";
            return false;
        }
        if (layer <= last) {
            why = "scheme parts go once each, in the order pickle, gzip or lz4, tls (e.g. gzip+tls://)";
            return false;
        }
        last = layer;
        if (plus == std::string_view::npos) break;
        scheme.remove_prefix(plus + 1);
    }
    if (wire.framing == Framing::pickle && wire.compression != protocol::Compression::none) {
        why = "pickle frames cannot be compressed: carbon's pickle receivers read them as they are";
        return false;
    }
    return true;
}

}  // namespace

std::string wire_scheme(const Wire& wire) {
    std::string scheme;
    auto add = [&](const char* part) {
        if (!scheme.empty()) scheme += '+';
        scheme += part;
    };
    if (wire.framing == Framing::pickle) add("pickle");
    if (wire.compression != protocol::Compression::none) add(protocol::compression_name(wire.compression));
    if (wire.tls) add("tls");
    return scheme;
}

std::string Destination::address() const {
    std::string port_text = std::to_string(port);
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
    return host + ":" + port_text;
}

bool parse_destination(std::string_view text, Destination& out, std::string& error) {
    const std::string_view trimmed = strip(text);
    const std::string quoted = net::quoted("", text);
    std::string_view s = trimmed;
    Wire wire;
    if (const size_t scheme_end = s.find("://"); scheme_end != std::string_view::npos) {
        std::string why;
        if (!parse_scheme(s.substr(0, scheme_end), wire, why)) {
            error = "invalid destination " + quoted + ": " + why +
                " (expected host:port[:instance], optionally after pickle://, gzip://, lz4://, tls://, gzip+tls://, "
                "lz4+tls:// or pickle+tls://; or https://host:port)";
            return false;
        }
        s.remove_prefix(scheme_end + 3);
    }
    std::string_view host, rest;
    // carbon looks for the *last* "]:" when the entry starts with '[' and for the *first* ':'
    // otherwise. Where carbon's str.find()/rfind() would return -1 it silently produces
    // nonsense (e.g. "2004" becomes host "200", port 2004); we refuse those inputs instead.
    if (!s.empty() && s.front() == '[') {
        const size_t bracket = s.rfind("]:");
        if (bracket == std::string_view::npos) {
            error = "invalid destination " + quoted + ": expected [v6-address]:port[:instance]";
            return false;
        }
        host = s.substr(1, bracket - 1);
        rest = s.substr(bracket + 2);
    } else {
        const size_t colon = s.find(':');
        if (colon == std::string_view::npos) {
            error = "invalid destination " + quoted + ": missing port (expected host:port[:instance])";
            return false;
        }
        host = s.substr(0, colon);
        rest = s.substr(colon + 1);
    }

    std::optional<std::string> instance;
    std::string_view port_text = rest;
    if (const size_t colon = rest.find(':'); colon != std::string_view::npos) {
        port_text = rest.substr(0, colon);
        instance = std::string(rest.substr(colon + 1));  // may be "" and may contain ':'
    }

    long port = 0;
    if (!parse_python_int(port_text, port)) {
        error = "invalid destination " + quoted + ": port '" + net::printable(port_text, 32) + "' is not a number";
        return false;
    }
    if (port < 1 || port > 65535) {
        error = "invalid destination " + quoted + ": port must be 1-65535";
        return false;
    }
    if (host.empty()) {
        error = "invalid destination " + quoted + ": empty host";
        return false;
    }

    // The text goes into logs, the runtime-destinations file and process titles: printable ASCII
    // only, and a host DNS could resolve.
    for (unsigned char c : s)
        if (c <= 0x20 || c >= 0x7f) {
            error = "invalid destination " + quoted + ": a space, control or non-ASCII byte inside";
            return false;
        }
    if (std::string why = net::host_problem(host); !why.empty()) {
        error = "invalid destination " + quoted + ": " + why;
        return false;
    }

    out.text = std::string(trimmed);
    out.wire = wire;
    out.host = std::string(host);
    out.port = static_cast<uint16_t>(port);
    out.instance = std::move(instance);
    return true;
}

}  // namespace polymur::route
