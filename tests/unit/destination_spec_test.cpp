// common/destination_spec: a destination parsed once into its transport and endpoint.
#include "common/destination_spec.hpp"

#include <gtest/gtest.h>

namespace polymur {
namespace {

TEST(DestinationSpec, TcpIsARingNodeWithItsInstance) {
    DestinationSpec spec;
    std::string error;
    ASSERT_TRUE(parse_destination_spec("10.0.0.1:2004:a", spec, error)) << error;
    EXPECT_EQ(spec.transport, DestinationTransport::tcp);
    EXPECT_TRUE(spec.ring_member());
    EXPECT_EQ(spec.endpoint.host, "10.0.0.1");
    EXPECT_EQ(spec.endpoint.port, 2004);
    ASSERT_TRUE(spec.endpoint.instance.has_value());
    EXPECT_EQ(*spec.endpoint.instance, "a");
    EXPECT_STREQ(transport_name(spec.transport), "tcp");
}

TEST(DestinationSpec, HttpsIsAMirrorWithHostPortAndPath) {
    DestinationSpec spec;
    std::string error;
    ASSERT_TRUE(parse_destination_spec("https://[::1]:8443/site/", spec, error)) << error;
    EXPECT_EQ(spec.transport, DestinationTransport::https);
    EXPECT_FALSE(spec.ring_member());
    EXPECT_EQ(spec.endpoint.text, "https://[::1]:8443/site/");
    EXPECT_EQ(spec.endpoint.host, "::1");
    EXPECT_EQ(spec.endpoint.port, 8443);
    EXPECT_FALSE(spec.endpoint.instance.has_value());
    EXPECT_EQ(spec.https.path, "/site/ingest");
    EXPECT_STREQ(transport_name(spec.transport), "https");
}

TEST(DestinationSpec, TheSchemeAloneDecidesTheTransport) {
    EXPECT_EQ(transport_of("https://gw:443"), DestinationTransport::https);
    EXPECT_EQ(transport_of("https://"), DestinationTransport::https);  // and then does not parse
    EXPECT_EQ(transport_of("gw:443"), DestinationTransport::tcp);
    EXPECT_EQ(transport_of("HTTPS://gw:443"),
              DestinationTransport::tcp);  // not a scheme polymur knows: a bad host:port
}

TEST(DestinationSpec, RefusalsSayWhyAndLeaveTheOutputAlone) {
    DestinationSpec spec;
    std::string error;
    ASSERT_TRUE(parse_destination_spec("a:1", spec, error));
    for (const char* bad : {"https://gateway", "https://gw:0", "host", "host:99999", ""}) {
        error.clear();
        EXPECT_FALSE(parse_destination_spec(bad, spec, error)) << bad;
        EXPECT_FALSE(error.empty()) << bad;
        EXPECT_EQ(spec.endpoint.text, "a:1") << bad;
    }
}

}  // namespace
}  // namespace polymur
