// --trusted-proxies ranges: parsing and matching, IPv4, IPv6 and IPv4-mapped IPv6 peers.
#include "common/cidr.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <cstring>

namespace polymur {
namespace {

struct Address {
    sockaddr_storage storage {};
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Address v4(const char* text) {
    Address a;
    auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage);
    sin->sin_family = AF_INET;
    EXPECT_EQ(inet_pton(AF_INET, text, &sin->sin_addr), 1) << text;
    return a;
}

Address v6(const char* text) {
    Address a;
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    sin6->sin6_family = AF_INET6;
    EXPECT_EQ(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1) << text;
    return a;
}

Cidr range(const char* text) {
    Cidr c;
    std::string error;
    EXPECT_TRUE(parse_cidr(text, c, error)) << text << ": " << error;
    return c;
}

TEST(Cidr, Ipv4Ranges) {
    Cidr ten = range("10.0.0.0/8");
    EXPECT_TRUE(cidr_contains(ten, v4("10.0.0.1").get()));
    EXPECT_TRUE(cidr_contains(ten, v4("10.255.255.255").get()));
    EXPECT_FALSE(cidr_contains(ten, v4("11.0.0.0").get()));
    EXPECT_FALSE(cidr_contains(ten, v4("9.255.255.255").get()));

    Cidr odd = range("192.168.16.0/20");  // a prefix that is not a whole number of bytes
    EXPECT_TRUE(cidr_contains(odd, v4("192.168.16.0").get()));
    EXPECT_TRUE(cidr_contains(odd, v4("192.168.31.255").get()));
    EXPECT_FALSE(cidr_contains(odd, v4("192.168.32.0").get()));
    EXPECT_FALSE(cidr_contains(odd, v4("192.168.15.255").get()));

    Cidr host = range("203.0.113.7");  // a bare address is /32
    EXPECT_EQ(host.prefix, 32u);
    EXPECT_TRUE(cidr_contains(host, v4("203.0.113.7").get()));
    EXPECT_FALSE(cidr_contains(host, v4("203.0.113.8").get()));

    Cidr all = range("0.0.0.0/0");
    EXPECT_TRUE(cidr_contains(all, v4("198.51.100.1").get()));
    EXPECT_FALSE(cidr_contains(all, v6("2001:db8::1").get()));
}

TEST(Cidr, HostBitsAreCleared) {
    Cidr c = range("10.1.2.3/8");
    EXPECT_TRUE(cidr_contains(c, v4("10.200.0.1").get()));
    Cidr d = range("2001:db8::1/32");
    EXPECT_TRUE(cidr_contains(d, v6("2001:db8:ffff::2").get()));
}

TEST(Cidr, Ipv6Ranges) {
    Cidr ula = range("fd00::/8");
    EXPECT_TRUE(cidr_contains(ula, v6("fd12:3456::1").get()));
    EXPECT_FALSE(cidr_contains(ula, v6("fe80::1").get()));
    EXPECT_FALSE(cidr_contains(ula, v4("10.0.0.1").get()));

    Cidr loopback = range("::1/128");
    EXPECT_TRUE(cidr_contains(loopback, v6("::1").get()));
    EXPECT_FALSE(cidr_contains(loopback, v6("::2").get()));

    Cidr odd = range("2001:db8:abcd:8000::/49");
    EXPECT_TRUE(cidr_contains(odd, v6("2001:db8:abcd:ffff::1").get()));
    EXPECT_FALSE(cidr_contains(odd, v6("2001:db8:abcd:7fff::1").get()));
}

TEST(Cidr, MappedIpv4PeersMatchIpv4Ranges) {
    Cidr ten = range("10.0.0.0/8");
    EXPECT_TRUE(cidr_contains(ten, v6("::ffff:10.9.8.7").get()));
    EXPECT_FALSE(cidr_contains(ten, v6("::ffff:11.9.8.7").get()));
    // IPv6 ranges see the mapped address as the IPv6 address it is.
    EXPECT_TRUE(cidr_contains(range("::ffff:0:0/96"), v6("::ffff:10.9.8.7").get()));
    EXPECT_FALSE(cidr_contains(range("fd00::/8"), v6("::ffff:10.9.8.7").get()));
}

TEST(Cidr, BadRangesAreRefusedWithTheInputQuoted) {
    for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/x", "10.0.0/8", "host.example/8",
                            "10.0.0.0/8/8", "10.0.0.0/-1", " 10.0.0.0/8"}) {
        Cidr c;
        std::string error;
        EXPECT_FALSE(parse_cidr(bad, c, error)) << bad;
        EXPECT_NE(error.find(std::string("'") + bad + "'"), std::string::npos) << error;
    }
    std::vector<Cidr> list;
    std::string error;
    EXPECT_TRUE(parse_cidrs({"10.0.0.0/8", "::1"}, list, error));
    EXPECT_EQ(list.size(), 2u);
    EXPECT_TRUE(any_cidr_contains(list, v6("::1").get()));
    EXPECT_FALSE(any_cidr_contains(list, v4("127.0.0.1").get()));
    EXPECT_FALSE(parse_cidrs({"10.0.0.0/8", "nope"}, list, error));
    EXPECT_NE(error.find("'nope'"), std::string::npos);
    EXPECT_FALSE(any_cidr_contains(list, nullptr));
}

}  // namespace
}  // namespace polymur
