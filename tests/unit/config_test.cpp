#include "common/config.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace polymur {
namespace {

class ConfigTest : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/polymur-config-XXXXXX";
        ASSERT_NE(mkdtemp(pattern), nullptr) << std::strerror(errno);
        dir_ = pattern;
        old_out_ = std::cout.rdbuf(out_.rdbuf());
        old_err_ = std::cerr.rdbuf(err_.rdbuf());
    }
    void TearDown() override {
        std::cout.rdbuf(old_out_);
        std::cerr.rdbuf(old_err_);
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    ParseOutcome parse(std::vector<std::string> args, std::vector<std::string> env = {}) {
        std::vector<const char*> argv {"polymur"};
        for (const std::string& a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        std::vector<const char*> envp;
        for (const std::string& e : env) envp.push_back(e.c_str());
        envp.push_back(nullptr);
        config_ = Config {};
        return parse_config(static_cast<int>(argv.size() - 1), argv.data(), envp.data(), config_);
    }

    std::string write_config(const std::string& name, const std::string& content) {
        std::string path = dir_ + "/" + name;
        std::ofstream(path) << content;
        return path;
    }

    std::string out() const { return out_.str(); }
    std::string err() const { return err_.str(); }

    Config config_;
    std::string dir_;
    std::ostringstream out_, err_;
    std::streambuf* old_out_ = nullptr;
    std::streambuf* old_err_ = nullptr;
};

TEST_F(ConfigTest, Defaults) {
    ASSERT_EQ(parse({}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.listen_addr, "0.0.0.0:2003");
    EXPECT_EQ(config_.api_addr, "localhost:2030");
    EXPECT_EQ(config_.admin_socket, "/var/lib/polymur/polymur.sock");
    EXPECT_TRUE(config_.destinations.empty());
    EXPECT_EQ(config_.distribution, Distribution::broadcast);
    EXPECT_EQ(config_.queue_cap, 4000000u);
    EXPECT_EQ(config_.queue_bytes, 256ull << 20);
    EXPECT_FALSE(config_.console_out);
    EXPECT_EQ(config_.workers, default_worker_count());
    EXPECT_EQ(config_.state_dir, "/var/lib/polymur");
    EXPECT_EQ(config_.reconnect_interval_s, 10u);
    EXPECT_EQ(config_.connect_timeout_ms, 3000u);
    EXPECT_EQ(config_.max_line_length, 16384u);
    EXPECT_EQ(config_.idle_timeout_s, 600u);
    EXPECT_EQ(config_.stats_interval_s, 5u);
    EXPECT_EQ(config_.drain_timeout_s, 5u);
    EXPECT_EQ(config_.config_file, "");
    EXPECT_EQ(out(), "");
    EXPECT_EQ(err(), "");
}

TEST_F(ConfigTest, DefaultWorkerCountIsBetweenOneAndSixteen) {
    uint32_t n = default_worker_count();
    EXPECT_GE(n, 1u);
    EXPECT_LE(n, 16u);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    EXPECT_EQ(n, static_cast<uint32_t>(cpus < 1 ? 1 : cpus > 16 ? 16 : cpus));
}

TEST_F(ConfigTest, GoStyleSingleDash) {
    ASSERT_EQ(parse({"-listen-addr=1.2.3.4:5"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.listen_addr, "1.2.3.4:5");
}

TEST_F(ConfigTest, GoStyleSingleDashSeparateValue) {
    ASSERT_EQ(parse({"-listen-addr", "1.2.3.4:5", "-workers", "3"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.listen_addr, "1.2.3.4:5");
    EXPECT_EQ(config_.workers, 3u);
}

TEST_F(ConfigTest, DoubleDash) {
    ASSERT_EQ(parse({"--listen-addr=1.2.3.4:5", "--api-addr", "127.0.0.1:9", "--state-dir=/srv/p"}), ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.listen_addr, "1.2.3.4:5");
    EXPECT_EQ(config_.api_addr, "127.0.0.1:9");
    EXPECT_EQ(config_.state_dir, "/srv/p");
    EXPECT_EQ(config_.admin_socket, "/srv/p/polymur.sock");  // follows the state dir
}

TEST_F(ConfigTest, ExplicitAdminSocketIsKept) {
    ASSERT_EQ(parse({"-state-dir=/srv/p", "-admin-socket=/run/p.sock"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.admin_socket, "/run/p.sock");
}

TEST_F(ConfigTest, NumericOptions) {
    ASSERT_EQ(parse({"-queue-cap=12", "-queue-bytes=8388608", "-workers=64", "-reconnect-interval=2",
                     "-connect-timeout-ms=250", "-max-line-length=16", "-idle-timeout=0", "-stats-interval=1",
                     "-drain-timeout=0"}),
              ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.queue_cap, 12u);
    EXPECT_EQ(config_.queue_bytes, 8388608u);
    EXPECT_EQ(config_.workers, 64u);
    EXPECT_EQ(config_.reconnect_interval_s, 2u);
    EXPECT_EQ(config_.connect_timeout_ms, 250u);
    EXPECT_EQ(config_.max_line_length, 16u);
    EXPECT_EQ(config_.idle_timeout_s, 0u);
    EXPECT_EQ(config_.stats_interval_s, 1u);
    EXPECT_EQ(config_.drain_timeout_s, 0u);
}

TEST_F(ConfigTest, ConsoleOutWithoutValueIsTrue) {
    ASSERT_EQ(parse({"--console-out"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.console_out);
    ASSERT_EQ(parse({"-console-out"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.console_out);
}

TEST_F(ConfigTest, ConsoleOutExplicitValue) {
    ASSERT_EQ(parse({"-console-out=true"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.console_out);
    ASSERT_EQ(parse({"-console-out=false"}), ParseOutcome::run) << err();
    EXPECT_FALSE(config_.console_out);
    ASSERT_EQ(parse({"--console-out=false"}), ParseOutcome::run) << err();
    EXPECT_FALSE(config_.console_out);
    ASSERT_EQ(parse({"--console-out=1"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.console_out);
}

TEST_F(ConfigTest, DestinationsAreSplitAndTrimmed) {
    ASSERT_EQ(parse({"-destinations=a:1,b:2"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.destinations, (std::vector<std::string> {"a:1", "b:2"}));
    ASSERT_EQ(parse({"-destinations= a:1 ,\tb:2:x\t, ,,c:3,"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.destinations, (std::vector<std::string> {"a:1", "b:2:x", "c:3"}));
    ASSERT_EQ(parse({"-destinations= , \t,"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.destinations.empty());
    ASSERT_EQ(parse({"-destinations", ""}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.destinations.empty());
}

TEST_F(ConfigTest, Environment) {
    ASSERT_EQ(parse({},
                    {"PATH=/usr/bin", "POLYMUR_LISTEN_ADDR=9.9.9.9:1", "POLYMUR_QUEUE_CAP=77",
                     "POLYMUR_CONSOLE_OUT=true", "POLYMUR_DESTINATIONS=x:1, y:2", "NOEQUALS"}),
              ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.listen_addr, "9.9.9.9:1");
    EXPECT_EQ(config_.queue_cap, 77u);
    EXPECT_TRUE(config_.console_out);
    EXPECT_EQ(config_.destinations, (std::vector<std::string> {"x:1", "y:2"}));
}

TEST_F(ConfigTest, EnvironmentWithoutPrefixIsIgnored) {
    ASSERT_EQ(parse({}, {"LISTEN_ADDR=9.9.9.9:1", "XPOLYMUR_LISTEN_ADDR=8.8.8.8:1", "polymur_listen_addr=7.7.7.7:1"}),
              ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.listen_addr, "0.0.0.0:2003");
}

TEST_F(ConfigTest, EnvironmentCannotAskForHelp) {
    // help and version are not settings: in the environment they are unknown names, as in the file.
    EXPECT_EQ(parse({}, {"POLYMUR_HELP=1"}), ParseOutcome::exit_error);
    EXPECT_EQ(out(), "");
    EXPECT_NE(err().find("POLYMUR_HELP names no option"), std::string::npos) << err();
}

TEST_F(ConfigTest, ToolVariablesAreNotOptions) {
    // The test harness and benchmark pass these to every polymur they start.
    ASSERT_EQ(
        parse({}, {"POLYMUR_BIN=/x/polymur", "POLYMUR_BENCH_DIR=/x", "POLYMUR_IN_NETNS=1", "POLYMUR_TEST_INSTALL=1"}),
        ParseOutcome::run)
        << err();
}

TEST_F(ConfigTest, EnvironmentErrorNamesTheVariable) {
    EXPECT_EQ(parse({}, {"POLYMUR_WORKERS=abc"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("environment variable POLYMUR_WORKERS: "), std::string::npos) << err();
    EXPECT_NE(err().find("abc"), std::string::npos) << err();
}

TEST_F(ConfigTest, EnvironmentBadValueIsAnError) {
    EXPECT_EQ(parse({}, {"POLYMUR_WORKERS=many"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("polymur: "), std::string::npos) << err();
}

TEST_F(ConfigTest, UnknownPolymurEnvironmentVariableIsReported) {
    // A typo in a POLYMUR_* name is an error, as a typo in the file is: it would drop a setting.
    EXPECT_EQ(parse({}, {"POLYMUR_LISTEN_ADRESS=9.9.9.9:1"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("POLYMUR_LISTEN_ADRESS"), std::string::npos) << err();
}

TEST_F(ConfigTest, ConfigFile) {
    std::string path = write_config("polymur.conf",
                                    "# comment\n"
                                    "listen-addr = 5.5.5.5:2003\n"
                                    "destinations = a:1, b:2\n"
                                    "console-out = true\n"
                                    "workers = 2\n"
                                    "\n");
    ASSERT_EQ(parse({"--config=" + path}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.config_file, path);
    EXPECT_EQ(config_.listen_addr, "5.5.5.5:2003");
    EXPECT_EQ(config_.destinations, (std::vector<std::string> {"a:1", "b:2"}));
    EXPECT_TRUE(config_.console_out);
    EXPECT_EQ(config_.workers, 2u);
}

TEST_F(ConfigTest, PrecedenceCommandLineOverEnvironmentOverFile) {
    std::string path = write_config("polymur.conf",
                                    "listen-addr = 10.0.0.1:1\n"
                                    "api-addr = 10.0.0.1:2\n"
                                    "state-dir = /file\n"
                                    "queue-cap = 3\n");
    ASSERT_EQ(parse({"-config=" + path, "-listen-addr=10.0.0.3:1"},
                    {"POLYMUR_LISTEN_ADDR=10.0.0.2:1", "POLYMUR_API_ADDR=10.0.0.2:2", "POLYMUR_QUEUE_CAP=2"}),
              ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.listen_addr, "10.0.0.3:1");  // all three set it
    EXPECT_EQ(config_.api_addr, "10.0.0.2:2");     // environment and file
    EXPECT_EQ(config_.queue_cap, 2u);              // environment and file
    EXPECT_EQ(config_.state_dir, "/file");         // file only
    EXPECT_EQ(config_.reconnect_interval_s, 10u);  // nobody: default
}

TEST_F(ConfigTest, ConfigFileFromEnvironment) {
    std::string path = write_config("env.conf", "listen-addr = 10.0.0.4:1\nworkers = 5\n");
    ASSERT_EQ(parse({}, {"POLYMUR_CONFIG=" + path}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.config_file, path);
    EXPECT_EQ(config_.listen_addr, "10.0.0.4:1");
    EXPECT_EQ(config_.workers, 5u);
}

TEST_F(ConfigTest, CommandLineConfigFileBeatsEnvironment) {
    std::string cmd = write_config("cmd.conf", "listen-addr = 10.0.0.5:1\n");
    std::string env = write_config("env.conf", "listen-addr = 10.0.0.6:1\n");
    ASSERT_EQ(parse({"--config", cmd}, {"POLYMUR_CONFIG=" + env}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.config_file, cmd);
    EXPECT_EQ(config_.listen_addr, "10.0.0.5:1");
}

TEST_F(ConfigTest, MissingConfigFileIsAnError) {
    const std::string path = dir_ + "/nope.conf";
    EXPECT_EQ(parse({"-config=" + path}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: config file " + path + ": cannot open: No such file or directory\n");
}

TEST_F(ConfigTest, UnknownOptionInConfigFileIsAnError) {
    std::string path = write_config("bad.conf", "listen-adr = x:1\n");
    EXPECT_EQ(parse({"-config=" + path}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("listen-adr"), std::string::npos) << err();
}

TEST_F(ConfigTest, UnknownOptionIsAnError) {
    EXPECT_EQ(parse({"-listen-adr=1.2.3.4:5"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("polymur: "), std::string::npos) << err();
    EXPECT_NE(err().find("listen-adr"), std::string::npos) << err();
    EXPECT_NE(err().find("(try --help)"), std::string::npos) << err();
    EXPECT_EQ(out(), "");
}

TEST_F(ConfigTest, ConsoleOutTakesAFollowingBooleanWord) {
    ASSERT_EQ(parse({"--console-out", "false"}), ParseOutcome::run) << err();
    EXPECT_FALSE(config_.console_out);
    ASSERT_EQ(parse({"-console-out", "-listen-addr=1.2.3.4:5"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.console_out);
    EXPECT_EQ(config_.listen_addr, "1.2.3.4:5");
}

TEST_F(ConfigTest, PositionalArgumentIsAnError) {
    // A forgotten dash: the operator meant -listen-addr=1.2.3.4:5.
    ParseOutcome outcome = parse({"listen-addr=1.2.3.4:5"});
    EXPECT_EQ(outcome, ParseOutcome::exit_error);
    EXPECT_NE(err().find("(try --help)"), std::string::npos) << err();
    EXPECT_EQ(parse({"-workers=2", "stray"}), ParseOutcome::exit_error);
}

TEST_F(ConfigTest, BadValueTypeIsAnError) {
    EXPECT_EQ(parse({"-workers=abc"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("(try --help)"), std::string::npos) << err();
    EXPECT_EQ(parse({"-queue-cap=12x"}), ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-console-out=maybe"}), ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-max-line-length=1.5"}), ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-workers="}), ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-metrics-flush=soon"}), ParseOutcome::exit_error);
}

TEST_F(ConfigTest, SelfMetricsPrefixMustBeAMetricName) {
    EXPECT_EQ(parse({"--self-metrics-prefix=relays.m\xc3\xa9tro"}), ParseOutcome::run) << err();
    for (const char* bad : {"--self-metrics-prefix=a b", "--self-metrics-prefix=a\xff",
                            "--self-metrics-prefix=a\xc2\xa0"
                            "b",
                            "--self-metrics-prefix=a\x1b[31m"}) {
        EXPECT_EQ(parse({bad}), ParseOutcome::exit_error) << bad;
        EXPECT_NE(err().find("--self-metrics-prefix must be a metric name"), std::string::npos) << err();
    }
}

TEST_F(ConfigTest, MissingValueIsAnError) {
    EXPECT_EQ(parse({"--listen-addr"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("(try --help)"), std::string::npos) << err();
}

TEST_F(ConfigTest, NegativeValueForUnsignedOptionIsAnError) {
    // Go's flag package refuses "-1" for a uint flag; a wrapped 18446744073709551615 is never meant.
    ParseOutcome outcome = parse({"-queue-cap=-1"});
    EXPECT_EQ(outcome, ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-reconnect-interval=-1"}), ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-idle-timeout=-5"}), ParseOutcome::exit_error);
}

TEST_F(ConfigTest, CompatibilityOptionsAreAcceptedAndIgnored) {
    ASSERT_EQ(parse({"-stat-addr=localhost:2020", "-metrics-flush=10"}), ParseOutcome::run) << err();
    EXPECT_EQ(err(), "");  // the warning is a log line with its prefix, not a command message (test_operator.py)
    EXPECT_EQ(config_.self_metrics_interval_s, 10u);
}

TEST_F(ConfigTest, HelpListsEveryOptionWithItsDefault) {
    ASSERT_EQ(parse({"--help"}), ParseOutcome::exit_ok);
    const std::string text = out();
    EXPECT_EQ(text.rfind("usage: polymur [options]\n", 0), 0u) << text;
    EXPECT_EQ(err(), "");
    const std::vector<std::pair<std::string, std::string>> with_defaults = {
        {"--listen-addr", "(=0.0.0.0:2003)"},
        {"--api-addr", "(=localhost:2030)"},
        {"--distribution", "(=broadcast)"},
        {"--queue-cap", "(=4000000)"},
        {"--queue-bytes", "(=268435456)"},
        {"--console-out", "(=0)"},
        {"--workers", "(=0)"},
        {"--state-dir", "(=/var/lib/polymur)"},
        {"--reconnect-interval", "(=10)"},
        {"--connect-timeout-ms", "(=3000)"},
        {"--max-line-length", "(=16384)"},
        {"--idle-timeout", "(=600)"},
        {"--stats-interval", "(=5)"},
        {"--drain-timeout", "(=5)"},
    };
    for (const auto& [name, shown_default] : with_defaults) {
        size_t at = text.find("  " + name + " ");
        ASSERT_NE(at, std::string::npos) << name << "\n" << text;
        std::string line = text.substr(at, text.find('\n', at) - at);
        EXPECT_NE(line.find(shown_default), std::string::npos) << name << ": " << line;
    }
    for (const char* name :
         {"-h [ --help ]", "--version", "--config", "--admin-socket", "--stat-addr", "--metrics-flush"})
        EXPECT_NE(text.find(name), std::string::npos) << name << "\n" << text;
    EXPECT_NE(text.find("<state-dir>/polymur.sock"), std::string::npos) << text;
    // The destination list defaults to empty, so no default is shown for it.
    size_t at = text.find("  --destinations arg ");
    ASSERT_NE(at, std::string::npos) << text;
    EXPECT_EQ(text.substr(at, text.find('\n', at) - at).find("(="), std::string::npos);
}

TEST_F(ConfigTest, HelpSpellings) {
    EXPECT_EQ(parse({"-h"}), ParseOutcome::exit_ok);
    EXPECT_NE(out().find("--listen-addr"), std::string::npos);
    out_.str("");
    EXPECT_EQ(parse({"-help"}), ParseOutcome::exit_ok);
    EXPECT_NE(out().find("--listen-addr"), std::string::npos);
    out_.str("");
    // --help wins over everything else on the line, even invalid values elsewhere.
    EXPECT_EQ(parse({"-workers=1000", "--help"}), ParseOutcome::exit_ok);
}

TEST_F(ConfigTest, Version) {
    ASSERT_EQ(parse({"--version"}), ParseOutcome::exit_ok);
    EXPECT_EQ(out(), std::string("polymur ") + POLYMUR_VERSION + "\n");
}

TEST_F(ConfigTest, ValidationFailureIsReported) {
    EXPECT_EQ(parse({"-workers=65"}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: --workers 65: at most 64\n");
}

TEST_F(ConfigTest, ValidateAcceptsDefaults) {
    Config c;
    EXPECT_EQ(validate_config(c), "");
}

TEST_F(ConfigTest, ValidateWorkers) {
    Config c;
    c.workers = 64;
    EXPECT_EQ(validate_config(c), "");
    c.workers = 65;
    EXPECT_EQ(validate_config(c), "--workers 65: at most 64");
}

TEST_F(ConfigTest, ValidateMaxLineLength) {
    Config c;
    c.max_line_length = 16;
    EXPECT_EQ(validate_config(c), "");
    c.max_line_length = 1u << 20;
    EXPECT_EQ(validate_config(c), "");
    c.max_line_length = 15;
    EXPECT_EQ(validate_config(c), "--max-line-length must be between 16 and 1048576");
    c.max_line_length = (1u << 20) + 1;
    EXPECT_EQ(validate_config(c), "--max-line-length must be between 16 and 1048576");
    EXPECT_EQ(parse({"-max-line-length=15"}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: --max-line-length must be between 16 and 1048576\n");
}

TEST_F(ConfigTest, ValidateQueueCap) {
    Config c;
    c.queue_cap = 0;
    EXPECT_EQ(validate_config(c), "--queue-cap must be at least 1");
    c.queue_cap = 1;
    EXPECT_EQ(validate_config(c), "");
    EXPECT_EQ(parse({"-queue-cap=0"}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: --queue-cap must be at least 1\n");
}

TEST_F(ConfigTest, ValidateQueueBytes) {
    Config c;
    c.queue_bytes = (4u << 20) - 1;
    EXPECT_EQ(validate_config(c), "--queue-bytes must be at least 4194304");
    c.queue_bytes = 4u << 20;
    EXPECT_EQ(validate_config(c), "");
}

TEST_F(ConfigTest, ValidateDistribution) {
    EXPECT_EQ(parse({"-distribution=roundrobin"}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: --distribution roundrobin: expected broadcast or hash-route\n");
    // A name that is none of the values is refused while parsing; Config holds only the enum.
    EXPECT_EQ(parse({"-distribution=consistent-hashing"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("polymur: --distribution consistent-hashing: expected broadcast or hash-route\n"),
              std::string::npos);
    ASSERT_EQ(
        parse({"-distribution=hash-route", "-hash-type=fnv1a_ch", "-replication-factor=2", "-diverse-replicas=false"}),
        ParseOutcome::run);
    EXPECT_TRUE(config_.hash_route());
    EXPECT_EQ(config_.hash_type, route::HashType::fnv1a_ch);
    EXPECT_EQ(config_.replication_factor, 2u);
    EXPECT_FALSE(config_.diverse_replicas);
}

TEST_F(ConfigTest, ValidateHashRouteOptions) {
    EXPECT_EQ(parse({"-hash-type=md5"}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: --hash-type md5: expected carbon_ch, fnv1a_ch or jump_fnv1a_ch\n");
    EXPECT_EQ(parse({"-hash-compat=carbon"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("polymur: --hash-compat carbon: expected graphite or carbon-c-relay\n"), std::string::npos);
    // carbon refuses one ring node twice; carbon-c-relay only the same host and port twice
    EXPECT_EQ(parse({"-distribution=hash-route", "-destinations=10.0.0.1:2003,10.0.0.1:2004"}),
              ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-distribution=hash-route", "-hash-compat=carbon-c-relay", "-tag-normalize",
                     "-destinations=10.0.0.1:2003,10.0.0.1:2004"}),
              ParseOutcome::run);
    EXPECT_EQ(config_.hash_compat, route::HashCompat::carbon_c_relay);
    EXPECT_TRUE(config_.tag_normalize);
    EXPECT_EQ(parse({"-distribution=hash-route", "-hash-compat=carbon-c-relay",
                     "-destinations=10.0.0.1:2003:a,10.0.0.1:2003:b"}),
              ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-replication-factor=0"}), ParseOutcome::exit_error);
    EXPECT_EQ(parse({"-failover=maybe"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("polymur: --failover maybe: expected reroute or hold\n"), std::string::npos) << err();
    EXPECT_EQ(parse({"-failover-after=0"}), ParseOutcome::exit_error);
    ASSERT_EQ(parse({"-failover=hold", "-failover-after=5"}), ParseOutcome::run);
    EXPECT_EQ(config_.failover, Failover::hold);
    EXPECT_EQ(config_.failover_after, 5u);
}

// Each enum option: every value's name parses back to it, and the names are the options' spellings.
TEST(ConfigNames, RoundTrip) {
    for (Distribution d : {Distribution::broadcast, Distribution::hash_route}) {
        Distribution back = d == Distribution::broadcast ? Distribution::hash_route : Distribution::broadcast;
        ASSERT_TRUE(parse_distribution(distribution_name(d), back));
        EXPECT_EQ(back, d);
    }
    for (Failover f : {Failover::reroute, Failover::hold}) {
        Failover back = f == Failover::reroute ? Failover::hold : Failover::reroute;
        ASSERT_TRUE(parse_failover(failover_name(f), back));
        EXPECT_EQ(back, f);
    }
    for (Mode m : {Mode::relay, Mode::proxy, Mode::gateway}) {
        Mode back = m == Mode::relay ? Mode::gateway : Mode::relay;
        ASSERT_TRUE(parse_mode(mode_name(m), back));
        EXPECT_EQ(back, m);
    }
    EXPECT_STREQ(distribution_name(Distribution::hash_route), "hash-route");
    EXPECT_STREQ(mode_name(Mode::gateway), "gateway");
    Mode mode = Mode::proxy;
    EXPECT_FALSE(parse_mode("Gateway", mode));
    EXPECT_FALSE(parse_mode("", mode));
    EXPECT_EQ(mode, Mode::proxy);  // untouched
}

TEST_F(ConfigTest, ModeNameIsChecked) {
    EXPECT_EQ(parse({"--mode=bridge"}), ParseOutcome::exit_error);
    EXPECT_EQ(err(), "polymur: --mode bridge: expected relay, proxy or gateway\n");
}

TEST_F(ConfigTest, NoAbbreviations) { EXPECT_EQ(parse({"-listen=1.2.3.4:5"}), ParseOutcome::exit_error); }

TEST_F(ConfigTest, ValidateDestinationCount) {
    Config c;
    c.max_destinations = 127;
    for (int i = 0; i < 127; ++i)
        c.destinations.push_back("a:" + std::to_string(i + 1));  // plus the console: all 128 slots
    EXPECT_EQ(validate_config(c), "");
    c.destinations.push_back("a:1000");
    EXPECT_EQ(validate_config(c), "too many destinations");
}

TEST_F(ConfigTest, ValidateMaxDestinations) {
    Config c;
    for (int i = 0; i < 32; ++i) c.destinations.push_back("a:" + std::to_string(i + 1));
    EXPECT_EQ(validate_config(c), "");  // the default, 32
    c.destinations.push_back("a:1000");
    EXPECT_EQ(validate_config(c), "33 destinations configured; --max-destinations is 32");
    c.max_destinations = 128;
    EXPECT_EQ(validate_config(c), "--max-destinations must be between 1 and 127");
}

TEST_F(ConfigTest, ValidateIntervals) {
    Config c;
    c.reconnect_interval_s = 0;
    EXPECT_EQ(validate_config(c), "--reconnect-interval must be at least 1");
    c = Config {};
    c.stats_interval_s = 0;
    EXPECT_EQ(validate_config(c), "--stats-interval must be at least 1");
    c = Config {};
    c.backoff_reset_s = 0;
    EXPECT_EQ(validate_config(c), "--backoff-reset must be at least 1");
}

}  // namespace
}  // namespace polymur

namespace polymur {
namespace {

TEST_F(ConfigTest, ConfigFileErrorsNameFileAndLine) {
    std::string path = write_config("lines.conf", "# comment\nworkers = 2\n\nqueue-cap = lots\n");
    EXPECT_EQ(parse({"--config=" + path}), ParseOutcome::exit_error);
    EXPECT_NE(err().find(path + ":4: "), std::string::npos) << err();
    path = write_config("twice.conf", "workers = 2\nworkers = 3\n");
    EXPECT_EQ(parse({"--config=" + path}), ParseOutcome::exit_error);
    EXPECT_NE(err().find(path + ":2: 'workers' is set twice (first on line 1)"), std::string::npos) << err();
    path = write_config("noeq.conf", "workers 2\n");
    EXPECT_EQ(parse({"--config=" + path}), ParseOutcome::exit_error);
    EXPECT_NE(err().find(path + ":1: expected name = value"), std::string::npos) << err();
}

TEST_F(ConfigTest, ConfigFileValuesAreTrimmedAndCommentsDropped) {
    std::string path = write_config("trim.conf", "  listen-addr   =   1.2.3.4:5   # where\n--workers=3\n");
    ASSERT_EQ(parse({"--config=" + path}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.listen_addr, "1.2.3.4:5");
    EXPECT_EQ(config_.workers, 3u);
}

TEST_F(ConfigTest, CheckConfigValidatesDestinations) {
    EXPECT_EQ(parse({"--check-config", "-destinations=10.0.0.1"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("10.0.0.1"), std::string::npos) << err();
    EXPECT_EQ(parse({"-distribution=hash-route", "-destinations=h:1:a,h:2:a"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("same ring node"), std::string::npos) << err();
    ASSERT_EQ(parse({"--check-config", "-destinations=10.0.0.1:2003"}), ParseOutcome::run) << err();
    EXPECT_TRUE(config_.check_config);
}

TEST_F(ConfigTest, ModesFromOptionAndGatewayPort) {
    ASSERT_EQ(parse({"--mode=gateway", "-listen-addr=0.0.0.0", "-listen-port=8443", "-cert=/dev/null", "-key=/dev/null",
                     "-ca-cert=/dev/null"}),
              ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.mode, Mode::gateway);
    EXPECT_EQ(config_.https_listen_addr, "0.0.0.0:8443");
    EXPECT_FALSE(config_.plaintext_listener);
    EXPECT_EQ(parse({"--mode=proxy"}), ParseOutcome::exit_error);
    EXPECT_NE(err().find("--gateway"), std::string::npos) << err();
    ASSERT_EQ(parse({"--mode=proxy", "-gateway=https://gw:443", "-client-cert=/dev/null", "-client-key=/dev/null",
                     "-ca-cert=/dev/null"}),
              ParseOutcome::run)
        << err();
    EXPECT_EQ(config_.destinations, (std::vector<std::string> {"https://gw:443"}));
    EXPECT_EQ(parse({"-listen-port=443"}), ParseOutcome::exit_error);
}

TEST_F(ConfigTest, MetricsFlushSetsTheSelfMetricsInterval) {
    ASSERT_EQ(parse({"-metrics-flush=15"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.self_metrics_interval_s, 15u);
    ASSERT_EQ(parse({"-metrics-flush=15", "--self-metrics-interval=30"}), ParseOutcome::run) << err();
    EXPECT_EQ(config_.self_metrics_interval_s, 30u);
    EXPECT_EQ(parse({"-metrics-flush=soon"}), ParseOutcome::exit_error);
}

}  // namespace
}  // namespace polymur
