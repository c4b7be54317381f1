// common/net: ports, host names, host:port and https:// destinations, parsed with bounds.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/net.hpp"

namespace polymur::net {
namespace {

TEST(ParsePort, AcceptsTheRange) {
    EXPECT_EQ(parse_port("1", PortUse::connect), 1);
    EXPECT_EQ(parse_port("2003", PortUse::connect), 2003);
    EXPECT_EQ(parse_port("65535", PortUse::connect), 65535);
    EXPECT_EQ(parse_port("0", PortUse::listen), 0);
    EXPECT_EQ(parse_port("00080", PortUse::listen), 80);
}

TEST(ParsePort, RefusesWhatIsNotAPort) {
    for (const char* bad : {"", "0", "65536", "99999", "100000", "99999999999999999999", "18446744073709551617", "-1",
                            "+80", " 80", "80 ", "8_0", "0x50", "80a", "8.0", "\xef\xbc\x98"}) {
        EXPECT_FALSE(parse_port(bad, PortUse::connect)) << "'" << bad << "'";
    }
    EXPECT_FALSE(parse_port("65536", PortUse::listen));
    EXPECT_FALSE(parse_port("", PortUse::listen));
}

TEST(SplitHostPort, GoodAddresses) {
    struct Case {
        const char* text;
        const char* host;
        const char* port;
    };
    for (const Case& c : {Case {"127.0.0.1:2003", "127.0.0.1", "2003"}, Case {"localhost:2030", "localhost", "2030"},
                          Case {":2003", "", "2003"}, Case {"[::1]:2003", "::1", "2003"}, Case {"[::]:0", "::", "0"},
                          Case {"0.0.0.0:65535", "0.0.0.0", "65535"}, Case {"[2001:db8::1]:80", "2001:db8::1", "80"}}) {
        std::string host, port, error;
        EXPECT_TRUE(split_host_port(c.text, host, port, error)) << c.text << ": " << error;
        EXPECT_EQ(host, c.host);
        EXPECT_EQ(port, c.port);
    }
}

TEST(SplitHostPort, MalformedAddressesGiveOneLineErrors) {
    const std::string long_host(254, 'a');
    const std::string long_label = std::string(64, 'b') + ".example";
    for (const std::string& bad : std::vector<std::string> {"",
                                                            ":",
                                                            "host",
                                                            "host:",
                                                            "host:99999999999999999999",
                                                            "host:65536",
                                                            "host:-1",
                                                            "host:+1",
                                                            "host: 80",
                                                            "host:80 ",
                                                            "host:80x",
                                                            "host:0x50",
                                                            "[::1]",
                                                            "[::1]:",
                                                            "[::1]80",
                                                            "[::1]x:80",
                                                            "[]:80",
                                                            "[::1:80",
                                                            "[[::1]]:80",
                                                            "::1:80",
                                                            "a:b:80",
                                                            "ho st:80",
                                                            "ho\x1b[31mst:80",
                                                            std::string("ho\0st:80", 8),
                                                            "h\xc3\xa9:80",
                                                            "host\n:80",
                                                            long_host + ":80",
                                                            long_label + ":80",
                                                            "[::1]:99999999999999999999999999999999999999"}) {
        std::string host = "unchanged", port = "unchanged", error;
        EXPECT_FALSE(split_host_port(bad, host, port, error)) << "'" << bad << "' was accepted";
        EXPECT_FALSE(error.empty());
        EXPECT_EQ(error.find('\n'), std::string::npos) << error;
        EXPECT_EQ(error.find('\x1b'), std::string::npos) << error;
        EXPECT_EQ(host, "unchanged");
    }
}

TEST(SplitHostPort, ConnectNeedsAHostAndANonZeroPort) {
    std::string host, port, error;
    EXPECT_FALSE(split_host_port(":80", host, port, error, PortUse::connect));
    EXPECT_FALSE(split_host_port("gw:0", host, port, error, PortUse::connect));
    EXPECT_TRUE(split_host_port("gw:443", host, port, error, PortUse::connect)) << error;
}

TEST(HostProblem, DnsLimits) {
    EXPECT_EQ(host_problem(std::string(253, 'a').replace(63, 1, ".").replace(127, 1, ".").replace(191, 1, ".")), "");
    EXPECT_NE(host_problem(std::string(254, 'a')), "");
    EXPECT_EQ(host_problem(std::string(63, 'a') + ".com"), "");
    EXPECT_NE(host_problem(std::string(64, 'a') + ".com"), "");
    EXPECT_NE(host_problem("a\x7f"), "");
    EXPECT_NE(host_problem("a\x9b"
                           "31m"),
              "");  // a C1 CSI byte
}

TEST(ParseHttpsUrl, GoodAndBad) {
    HttpsUrl url;
    std::string error;
    ASSERT_TRUE(parse_https_url("https://gw.example:8443/site/", url, error)) << error;
    EXPECT_EQ(url.host, "gw.example");
    EXPECT_EQ(url.port, "8443");
    EXPECT_EQ(url.authority, "gw.example:8443");
    EXPECT_EQ(url.path, "/site/ingest");
    ASSERT_TRUE(parse_https_url("https://[::1]:443", url, error)) << error;
    EXPECT_EQ(url.host, "::1");
    EXPECT_EQ(url.path, "/ingest");
    for (const char* bad : {"https://gw:99999999999999999999", "https://gw:0", "https://:443", "https://gw",
                            "http://gw:443", "https://gw:443/a b", "https://g\x1bw:443", "https://gw:443/\x01"}) {
        EXPECT_FALSE(parse_https_url(bad, url, error)) << bad;
        EXPECT_EQ(error.find('\x1b'), std::string::npos) << error;
        EXPECT_EQ(error.find('\x01'), std::string::npos) << error;
    }
}

TEST(Printable, EscapesEverythingATerminalWouldInterpret) {
    EXPECT_EQ(printable("plain text"), "plain text");
    EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");
    EXPECT_EQ(printable(std::string("\0\n\x7f\xff\\", 5)), "\\x00\\x0a\\x7f\\xff\\x5c");
    EXPECT_EQ(printable("abcdef", 3), "abc...");
}

}  // namespace
}  // namespace polymur::net
