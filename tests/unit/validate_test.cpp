// What start refuses, --check-config refuses: both run parse_config, which runs these checks.
#include "common/validate.hpp"

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

namespace polymur {
namespace {

// Parses like main() does and returns what it printed on stderr ("" when the configuration runs).
std::string refusal(std::vector<std::string> args) {
    std::vector<const char*> argv {"polymur"};
    for (const std::string& a : args) argv.push_back(a.c_str());
    argv.push_back(nullptr);
    const char* envp[] = {nullptr};
    std::ostringstream captured;
    std::streambuf* old = std::cerr.rdbuf(captured.rdbuf());
    Config config;
    ParseOutcome outcome = parse_config(static_cast<int>(argv.size() - 1), argv.data(), envp, config);
    std::cerr.rdbuf(old);
    return outcome == ParseOutcome::run ? "" : captured.str();
}

TEST(Validate, ListenAddressWithoutPortIsRefused) {
    EXPECT_NE(refusal({"--listen-addr=0.0.0.0"}).find("expected host:port"), std::string::npos);
    EXPECT_NE(refusal({"--listen-addr=1.2.3"}).find("expected host:port"), std::string::npos);
}

TEST(Validate, ShortIpv4IsRefusedNotReadAsInetAton) {
    EXPECT_NE(refusal({"--listen-addr=1.2.3:2003"}).find("'1.2.3' is not an IPv4 address"), std::string::npos);
    EXPECT_NE(refusal({"--api-addr=127.1:2030"}).find("'127.1' is not an IPv4 address"), std::string::npos);
}

TEST(Validate, UnresolvableListenHostIsRefused) {
    EXPECT_NE(refusal({"--listen-addr=\"127.0.0.1:2003"}).find("cannot resolve"), std::string::npos);
}

TEST(Validate, PortOutOfRangeIsRefused) {
    EXPECT_NE(refusal({"--listen-addr=127.0.0.1:65536"}).find("65536"), std::string::npos);
    // Twenty digits overflow stoul: an error, not an exception out of a reload.
    EXPECT_NE(refusal({"--api-addr=127.0.0.1:99999999999999999999"}).find("bad port"), std::string::npos);
}

TEST(Validate, ListenAndAdminOnOneAddressAreRefused) {
    EXPECT_NE(refusal({"--listen-addr=127.0.0.1:2999", "--api-addr=127.0.0.1:2999"}).find("are the same address"),
              std::string::npos);
    // The wildcard takes every address of its family.
    EXPECT_NE(refusal({"--listen-addr=0.0.0.0:2999", "--api-addr=127.0.0.1:2999"}).find("are the same address"),
              std::string::npos);
    EXPECT_NE(refusal({"--listen-addr=[::]:2999", "--api-addr=127.0.0.1:2999"}).find("are the same address"),
              std::string::npos);
    EXPECT_EQ(refusal({"--listen-addr=127.0.0.1:2999", "--api-addr=127.0.0.2:2999"}), "");
}

TEST(Validate, DuplicateDestinationIsRefused) {
    EXPECT_NE(refusal({"--destinations=a:1:x,a:1:x"}).find("destination a:1:x is listed twice"), std::string::npos);
    EXPECT_NE(refusal({"--destinations=127.0.0.1:1,127.0.0.1:1"}).find("listed twice"), std::string::npos);
}

TEST(Validate, DestinationsStartRefusesAreRefused) {
    EXPECT_NE(refusal({"--destinations=" + std::string(300, 'h') + ":2003"}).find("longer than"), std::string::npos);
    EXPECT_NE(
        refusal({"--destinations=https://gateway"}).find("destination 'https://gateway': expected https://host:port"),
        std::string::npos);
    EXPECT_EQ(check_destination_text("https://gateway.example.net:443/ingest"), "");
    EXPECT_EQ(check_destination_text("10.0.0.1:2003:a"), "");
}

TEST(Validate, ConfigDirectoryIsRefused) {
    EXPECT_NE(refusal({"--config=/tmp"}).find("config file /tmp: is a directory"), std::string::npos);
}

TEST(Validate, OptionAsAValueIsRefused) {
    EXPECT_NE(refusal({"--listen-addr", "--check-config"}).find("--listen-addr needs a value"), std::string::npos);
    EXPECT_NE(refusal({"-state-dir", "-workers=2"}).find("--state-dir needs a value"), std::string::npos);
}

TEST(Validate, LastRepeatedOptionWins) {
    std::vector<const char*> argv {"polymur", "--state-dir=/tmp/a", "--workers=3", "--state-dir", "/tmp/b", nullptr};
    const char* envp[] = {nullptr};
    Config config;
    ASSERT_EQ(parse_config(5, argv.data(), envp, config), ParseOutcome::run);
    EXPECT_EQ(config.state_dir, "/tmp/b");
    EXPECT_EQ(config.workers, 3u);
}

TEST(Validate, WarningsForWhatLosesOrMisplacesMetrics) {
    Config c;
    c.destinations = {"no-such-host.invalid:2003"};
    auto warnings = config_warnings(c);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("host 'no-such-host.invalid' does not resolve"), std::string::npos) << warnings[0];
    // One lookup per host; a warning per destination on it.
    c.destinations = {"no-such-host.invalid:2003", "127.0.0.1:2003", "no-such-host.invalid:2004:b"};
    warnings = config_warnings(c);
    ASSERT_EQ(warnings.size(), 2u);
    EXPECT_EQ(warnings[0].rfind("destination no-such-host.invalid:2003: ", 0), 0u) << warnings[0];
    EXPECT_EQ(warnings[1].rfind("destination no-such-host.invalid:2004:b: ", 0), 0u) << warnings[1];

    c = Config {};
    c.distribution = Distribution::hash_route;
    c.hash_type = route::HashType::fnv1a_ch;
    c.destinations = {"127.0.0.1:2103", "127.0.0.2:2103"};
    warnings = config_warnings(c);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("127.0.0.1:2103 and 127.0.0.2:2103 have no instance"), std::string::npos) << warnings[0];
    c.destinations = {"127.0.0.1:2103:a", "127.0.0.2:2103:a"};
    warnings = config_warnings(c);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("share the instance 'a'"), std::string::npos) << warnings[0];
    c.destinations = {"127.0.0.1:2103:a", "127.0.0.1:2203:b"};
    EXPECT_TRUE(config_warnings(c).empty());
    // carbon-c-relay's fnv1a_ch keys a destination without instance on host:port: no pile-up
    c.hash_compat = route::HashCompat::carbon_c_relay;
    c.destinations = {"127.0.0.1:2103", "127.0.0.2:2103"};
    EXPECT_TRUE(config_warnings(c).empty());
    c.destinations = {"127.0.0.1:2103:a", "127.0.0.2:2103:a"};
    EXPECT_EQ(config_warnings(c).size(), 1u);

    c = Config {};
    warnings = config_warnings(c);
    ASSERT_EQ(warnings.size(), 1u);
    EXPECT_NE(warnings[0].find("broadcast with no destinations"), std::string::npos);
    c.console_out = true;  // ./dev.sh run: the console takes every metric
    EXPECT_TRUE(config_warnings(c).empty());
}

}  // namespace
}  // namespace polymur
