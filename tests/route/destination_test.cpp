// parse_destination: carbon's parseDestination, plus the errors carbon does not catch.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "route/destination.hpp"

namespace polymur::route {
namespace {

Destination parse_ok(std::string_view text) {
    Destination d;
    std::string error;
    EXPECT_TRUE(parse_destination(text, d, error)) << text << ": " << error;
    return d;
}

TEST(ParseDestination, HostPortInstance) {
    Destination d = parse_ok("127.0.0.1:2004:a");
    EXPECT_EQ(d.text, "127.0.0.1:2004:a");
    EXPECT_EQ(d.host, "127.0.0.1");
    EXPECT_EQ(d.port, 2004);
    EXPECT_EQ(d.instance, "a");
    EXPECT_EQ(d.address(), "127.0.0.1:2004");
}

TEST(ParseDestination, CompressionAndTlsComposeInOneOrder) {
    using protocol::Compression;
    const struct {
        const char* text;
        Wire wire;
    } cases[] = {
        {"gzip://relay:2003", {Framing::line, Compression::gzip, false}},
        {"lz4://relay:2003:b", {Framing::line, Compression::lz4, false}},
        {"gzip+tls://relay:2003", {Framing::line, Compression::gzip, true}},
        {"lz4+tls://[::1]:2003", {Framing::line, Compression::lz4, true}},
        {"pickle+tls://cache:2004", {Framing::pickle, Compression::none, true}},
    };
    for (const auto& c : cases) {
        Destination d = parse_ok(c.text);
        EXPECT_TRUE(d.wire == c.wire) << c.text;
        EXPECT_EQ(wire_scheme(d.wire) + "://", std::string(c.text).substr(0, std::string(c.text).find("://") + 3));
    }
    EXPECT_EQ(wire_scheme(Wire {}), "");
    // The scheme never changes where a destination hashes.
    EXPECT_EQ(parse_ok("lz4+tls://relay:2003:b").address(), parse_ok("relay:2003:b").address());
}

TEST(ParseDestination, SchemesSayWhatGoesOnTheWireAndNothingElse) {
    Destination plain = parse_ok("127.0.0.1:2004:a");
    EXPECT_TRUE(plain.wire.plain());
    Destination pickle = parse_ok(" pickle://127.0.0.1:2004:a ");
    EXPECT_EQ(pickle.text, "pickle://127.0.0.1:2004:a");
    EXPECT_EQ(pickle.wire.framing, Framing::pickle);
    EXPECT_FALSE(pickle.wire.tls);
    EXPECT_EQ(pickle.host, plain.host);
    EXPECT_EQ(pickle.port, plain.port);
    EXPECT_EQ(pickle.instance, plain.instance);
    Destination tls = parse_ok("tls://[::1]:2003");
    EXPECT_EQ(tls.wire.framing, Framing::line);
    EXPECT_TRUE(tls.wire.tls);
    EXPECT_EQ(tls.host, "::1");
    EXPECT_EQ(tls.address(), "[::1]:2003");
    EXPECT_FALSE(tls.instance.has_value());
    for (const char* bad :
         {"udp://host:2003", "Pickle://host:2004", "pickle://", "tls://host", "://host:2003",
          "pickle://pickle://host:2004", "tls+gzip://host:2003", "gzip+gzip://host:2003", "gzip+lz4://host:2003",
          "pickle+gzip://host:2004", "gzip+://host:2003", "+tls://host:2003", "snappy://host:2003"}) {
        Destination d;
        std::string error;
        EXPECT_FALSE(parse_destination(bad, d, error)) << bad;
        EXPECT_NE(error.find("invalid destination"), std::string::npos) << error;
    }
}

TEST(ParseDestination, NoInstanceIsNone) {
    Destination d = parse_ok("cache1:2003");
    EXPECT_EQ(d.host, "cache1");
    EXPECT_FALSE(d.instance.has_value());
}

TEST(ParseDestination, EmptyInstanceIsNotNone) {
    Destination d = parse_ok("host:2004:");
    ASSERT_TRUE(d.instance.has_value());
    EXPECT_EQ(*d.instance, "");
}

TEST(ParseDestination, InstanceKeepsLaterColons) { EXPECT_EQ(parse_ok("host:2004:a:b").instance, "a:b"); }

TEST(ParseDestination, WhitespaceTrimmedAndTextIsTrimmed) {
    Destination d = parse_ok(" \thost:2003 \n");
    EXPECT_EQ(d.text, "host:2003");
    EXPECT_EQ(d.host, "host");
    EXPECT_EQ(d.port, 2003);
}

TEST(ParseDestination, PortLikePythonInt) {
    EXPECT_EQ(parse_ok("host:+2004").port, 2004);
    EXPECT_EQ(parse_ok("host:02_004").port, 2004);
}

// carbon's int() would take "host: 2004 :x"; polymur refuses any space, control or non-ASCII byte
// inside a destination (it reaches logs, the runtime-destinations file and process titles), and
// host names beyond DNS limits.
TEST(ParseDestination, RefusesControlBytesSpacesAndOverlongNames) {
    for (const std::string& bad : std::vector<std::string> {
             "host: 2004 :x", "ho st:2004", "host:2004:a b", "ho\x1b[31mst:2004", "host:2004:\x1b]0;title\x07",
             "host:\x0c"
             "2004",
             "h\xc3\xa9:2004", "[::1\x01]:2004", std::string(254, 'a') + ":2004",
             std::string(64, 'a') + ".example:2004"}) {
        Destination d;
        std::string error;
        EXPECT_FALSE(parse_destination(bad, d, error)) << "'" << bad << "' was accepted";
        EXPECT_EQ(error.find('\x1b'), std::string::npos) << error;
        EXPECT_EQ(error.find('\x07'), std::string::npos) << error;
        EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    }
    EXPECT_EQ(parse_ok(std::string(63, 'a') + ".example:2004").port, 2004);
}

TEST(ParseDestination, Ipv6) {
    Destination d = parse_ok("[::1]:2004:b");
    EXPECT_EQ(d.host, "::1");
    EXPECT_EQ(d.port, 2004);
    EXPECT_EQ(d.instance, "b");
    EXPECT_EQ(d.address(), "[::1]:2004");

    d = parse_ok("[2001:db8::1]:2004");
    EXPECT_EQ(d.host, "2001:db8::1");
    EXPECT_FALSE(d.instance.has_value());
    EXPECT_EQ(d.address(), "[2001:db8::1]:2004");

    // carbon takes the last "]:" as the end of the address.
    d = parse_ok("[fe80::1%eth0]:2104:]x");
    EXPECT_EQ(d.host, "fe80::1%eth0");
    EXPECT_EQ(d.instance, "]x");
}

TEST(ParseDestination, BadStringsGiveOneLineErrorNamingTheInput) {
    for (const char* bad : {"127.0.0.1", "2004", "", "   ", "host:", "host:abc", "host:20 04", "host:0", "host:-1",
                            "host:65536", "host:99999999999999999999", ":2004", "[::1]", "[::1]:", "[::1]2004",
                            "[]:2004", "host:2004_", "host:_2004", "host:20__04"}) {
        Destination d;
        std::string error;
        EXPECT_FALSE(parse_destination(bad, d, error)) << "'" << bad << "' was accepted";
        const std::string named = std::string("'").append(bad).append("'");
        EXPECT_NE(error.find(named), std::string::npos) << error;
        EXPECT_EQ(error.find('\n'), std::string::npos) << error;
    }
}

}  // namespace
}  // namespace polymur::route
