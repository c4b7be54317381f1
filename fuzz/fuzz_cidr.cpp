// --trusted-proxies ranges (worker/cidr): parsing, and matching against IPv4, IPv6 and IPv4-mapped peers.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "common/cidr.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    polymur::Cidr range;
    std::string error;
    const bool parsed = polymur::parse_cidr(text, range, error);
    if (!parsed) {
        if (error.empty()) std::abort();
    } else if (range.prefix > (range.family == AF_INET ? 32u : 128u)) {
        std::abort();
    }
    // A comma-separated list, as --trusted-proxies is written.
    std::vector<std::string> texts;
    for (size_t start = 0; start <= text.size();) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        texts.emplace_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    std::vector<polymur::Cidr> ranges;
    error.clear();
    polymur::parse_cidrs(texts, ranges, error);

    sockaddr_in v4 {};
    v4.sin_family = AF_INET;
    inet_pton(AF_INET, "10.1.2.3", &v4.sin_addr);
    sockaddr_in6 v6 {};
    v6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
    sockaddr_in6 mapped {};
    mapped.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:10.1.2.3", &mapped.sin6_addr);
    sockaddr unknown {};
    unknown.sa_family = AF_UNIX;
    for (const sockaddr* peer : {reinterpret_cast<const sockaddr*>(&v4), reinterpret_cast<const sockaddr*>(&v6),
                                 reinterpret_cast<const sockaddr*>(&mapped), static_cast<const sockaddr*>(&unknown)}) {
        polymur::any_cidr_contains(ranges, peer);
        if (parsed) polymur::cidr_contains(range, peer);
    }
    return 0;
}
