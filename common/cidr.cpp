#include "common/cidr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>
#include <cstring>

#include "common/net.hpp"

namespace polymur {

bool parse_cidr(std::string_view text, Cidr& out, std::string& error) {
    auto fail = [&](const char* why) {
        error = net::quoted("", text) + ": " + why;
        return false;
    };
    size_t slash = text.find('/');
    std::string address(text.substr(0, slash));
    Cidr range;
    if (inet_pton(AF_INET, address.c_str(), range.bytes) == 1) {
        range.family = AF_INET;
        range.prefix = 32;
    } else if (inet_pton(AF_INET6, address.c_str(), range.bytes) == 1) {
        range.family = AF_INET6;
        range.prefix = 128;
    } else {
        return fail("not an IPv4 or IPv6 address or range (expected like 10.0.0.0/8 or fd00::/8)");
    }
    if (slash != std::string_view::npos) {
        std::string_view bits = text.substr(slash + 1);
        unsigned prefix = 0;
        auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
        if (bits.empty() || ec != std::errc() || end != bits.data() + bits.size() || prefix > range.prefix)
            return fail(range.family == AF_INET ? "prefix length must be 0..32" : "prefix length must be 0..128");
        range.prefix = prefix;
    }
    // Clear the host bits, so 10.1.2.3/8 means 10.0.0.0/8.
    size_t total = range.family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < total; ++i) {
        unsigned first_bit = static_cast<unsigned>(i) * 8;
        if (first_bit >= range.prefix) range.bytes[i] = 0;
        else if (range.prefix - first_bit < 8)
            range.bytes[i] &= static_cast<uint8_t>(0xff00u >> (range.prefix - first_bit));
    }
    out = range;
    return true;
}

bool parse_cidrs(const std::vector<std::string>& texts, std::vector<Cidr>& out, std::string& error) {
    out.clear();
    for (const std::string& text : texts) {
        Cidr range;
        if (!parse_cidr(text, range, error)) return false;
        out.push_back(range);
    }
    return true;
}

bool cidr_contains(const Cidr& range, const struct sockaddr* address) {
    if (!address) return false;
    const uint8_t* bytes = nullptr;
    sa_family_t family = address->sa_family;
    if (family == AF_INET) {
        bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const struct sockaddr_in*>(address)->sin_addr);
    } else if (family == AF_INET6) {
        const auto* in6 = &reinterpret_cast<const struct sockaddr_in6*>(address)->sin6_addr;
        bytes = reinterpret_cast<const uint8_t*>(in6);
        if (range.family == AF_INET && IN6_IS_ADDR_V4MAPPED(in6)) {
            family = AF_INET;
            bytes += 12;
        }
    } else {
        return false;
    }
    if (family != range.family) return false;
    unsigned whole = range.prefix / 8, rest = range.prefix % 8;
    if (std::memcmp(bytes, range.bytes, whole) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff00u >> rest);
    return (bytes[whole] & mask) == range.bytes[whole];
}

bool any_cidr_contains(const std::vector<Cidr>& ranges, const struct sockaddr* address) {
    for (const Cidr& range : ranges)
        if (cidr_contains(range, address)) return true;
    return false;
}

}  // namespace polymur
