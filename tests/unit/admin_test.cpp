#include "admin/command.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace polymur::admin {
namespace {

class FakeBackend : public Backend {
public:
    std::string getdest() override {
        calls.push_back("getdest");
        return "GETDEST\n";
    }
    std::string putdest(const std::string& destination) override {
        calls.push_back("putdest " + destination);
        return "PUT " + destination + "\n";
    }
    std::string deldest(const std::string& destination) override {
        calls.push_back("deldest " + destination);
        return "DEL " + destination + "\n";
    }
    std::string stats() override {
        calls.push_back("stats");
        return "STATS\n";
    }
    std::vector<std::string> calls;
};

// --- parse_command -------------------------------------------------------------------------------

TEST(ParseCommand, Empty) {
    for (const char* line : {"", " ", "\t\r\n", "\r\n"}) {
        Command c = parse_command(line);
        EXPECT_EQ(c.kind, CommandKind::empty) << line;
        EXPECT_EQ(c.name, "");
        EXPECT_EQ(c.argument, "");
        EXPECT_FALSE(c.extra_arguments);
    }
}

TEST(ParseCommand, Words) {
    EXPECT_EQ(parse_command("getdest").kind, CommandKind::getdest);
    EXPECT_EQ(parse_command("stats").kind, CommandKind::stats);
    EXPECT_EQ(parse_command("help").kind, CommandKind::help);
    EXPECT_EQ(parse_command("deldest a:1").kind, CommandKind::deldest);
    Command c = parse_command("putdest a:1");
    EXPECT_EQ(c.kind, CommandKind::putdest);
    EXPECT_EQ(c.name, "putdest");
    EXPECT_EQ(c.argument, "a:1");
    EXPECT_FALSE(c.extra_arguments);
}

TEST(ParseCommand, CaseSensitive) {
    Command c = parse_command("GETDEST");
    EXPECT_EQ(c.kind, CommandKind::unknown);
    EXPECT_EQ(c.name, "GETDEST");
}

TEST(ParseCommand, ExtraSpacesTabsAndCarriageReturn) {
    Command c = parse_command("  \tputdest \t  host:2003:x \r\n");
    EXPECT_EQ(c.kind, CommandKind::putdest);
    EXPECT_EQ(c.name, "putdest");
    EXPECT_EQ(c.argument, "host:2003:x");
    EXPECT_FALSE(c.extra_arguments);

    Command g = parse_command("getdest\r");
    EXPECT_EQ(g.kind, CommandKind::getdest);
    EXPECT_EQ(g.name, "getdest");
    EXPECT_EQ(g.argument, "");
}

TEST(ParseCommand, ExtraArguments) {
    Command c = parse_command("putdest a:1 b:2 c:3");
    EXPECT_EQ(c.kind, CommandKind::putdest);
    EXPECT_EQ(c.argument, "a:1");
    EXPECT_TRUE(c.extra_arguments);
    EXPECT_TRUE(parse_command("putdest a:1 b:2\r\n").extra_arguments);
    Command g = parse_command("getdest now");  // one argument is not "extra", even where none is expected
    EXPECT_EQ(g.argument, "now");
    EXPECT_FALSE(g.extra_arguments);
    EXPECT_FALSE(parse_command("deldest a:1 \t\r").extra_arguments);
}

TEST(ParseCommand, Unknown) {
    Command c = parse_command("frobnicate x");
    EXPECT_EQ(c.kind, CommandKind::unknown);
    EXPECT_EQ(c.name, "frobnicate");
    EXPECT_EQ(c.argument, "x");
    EXPECT_EQ(parse_command("getdests").kind, CommandKind::unknown);
}

// --- execute -------------------------------------------------------------------------------------

TEST(Execute, EmptyCommand) {
    FakeBackend backend;
    EXPECT_EQ(execute("", backend), "error: empty command; try 'help'\n");
    EXPECT_EQ(execute(" \r\n", backend), "error: empty command; try 'help'\n");
    EXPECT_TRUE(backend.calls.empty());
}

TEST(Execute, UnknownCommand) {
    FakeBackend backend;
    EXPECT_EQ(execute("frobnicate x", backend), "error: not a command: frobnicate; try 'help'\n");
    EXPECT_TRUE(backend.calls.empty());
}

TEST(Execute, UnknownCommandIsShownPrintableAndShort) {
    FakeBackend backend;
    EXPECT_EQ(execute("ab\x01\x7f\xc3\xa9", backend), "error: not a command: ab????; try 'help'\n");
    EXPECT_EQ(execute(std::string(70, 'z'), backend),
              "error: not a command: " + std::string(64, 'z') + "...; try 'help'\n");
    EXPECT_EQ(execute(std::string(64, 'z'), backend),
              "error: not a command: " + std::string(64, 'z') + "; try 'help'\n");
    EXPECT_TRUE(backend.calls.empty());
}

TEST(Execute, PutdestWithoutArgument) {
    FakeBackend backend;
    EXPECT_EQ(execute("putdest", backend), "error: putdest needs a destination (host:port[:instance])\n");
    EXPECT_EQ(execute("deldest  \r\n", backend), "error: deldest needs a destination (host:port[:instance])\n");
    EXPECT_TRUE(backend.calls.empty());
}

TEST(Execute, PutdestWithTwoArguments) {
    FakeBackend backend;
    EXPECT_EQ(execute("putdest a:1 b:2", backend), "error: putdest takes one destination\n");
    EXPECT_EQ(execute("deldest a:1 b:2", backend), "error: deldest takes one destination\n");
    EXPECT_TRUE(backend.calls.empty());
}

TEST(Execute, PutdestAndDeldestDelegate) {
    FakeBackend backend;
    EXPECT_EQ(execute("putdest a:1\r\n", backend), "PUT a:1\n");
    EXPECT_EQ(execute("\tdeldest   [::1]:2003:x ", backend), "DEL [::1]:2003:x\n");
    EXPECT_EQ(backend.calls, (std::vector<std::string> {"putdest a:1", "deldest [::1]:2003:x"}));
}

class ClusterBackend : public FakeBackend {
public:
    std::string putdest_to(const std::string& destination, const std::string& cluster) override {
        calls.push_back("putdest " + destination + " to " + cluster);
        return "PUT TO\n";
    }
    std::string deldest_from(const std::string& destination, const std::string& cluster) override {
        calls.push_back("deldest " + destination + " from " + cluster);
        return "DEL FROM\n";
    }
};

TEST(ParseCommand, ClusterClauses) {
    Command c = parse_command("putdest a:1 to main token=s");
    EXPECT_EQ(c.argument, "a:1");
    EXPECT_EQ(c.cluster, "main");
    EXPECT_EQ(c.token, "s");
    EXPECT_TRUE(c.error.empty());
    EXPECT_FALSE(c.extra_arguments);
    c = parse_command("deldest [::1]:2003:x from main");
    EXPECT_EQ(c.argument, "[::1]:2003:x");
    EXPECT_EQ(c.cluster, "main");
    // "to" as the destination itself is the destination (no cluster clause before one).
    c = parse_command("putdest to");
    EXPECT_EQ(c.argument, "to");
    EXPECT_TRUE(c.cluster.empty());
    EXPECT_EQ(parse_command("putdest a:1 from main").error, "putdest takes 'to CLUSTER', not 'from'");
    EXPECT_EQ(parse_command("deldest a:1 to main").error, "deldest takes 'from CLUSTER', not 'to'");
    EXPECT_EQ(parse_command("putdest a:1 to").error, "putdest to needs a cluster name");
    EXPECT_EQ(parse_command("deldest a:1 from token=x").error, "deldest from needs a cluster name");
    EXPECT_TRUE(parse_command("putdest a:1 to c to d").extra_arguments);
    EXPECT_TRUE(parse_command("getdest to c").cluster.empty());
}

TEST(Execute, ClusterForms) {
    ClusterBackend backend;
    EXPECT_EQ(execute("putdest a:1 to main", backend), "PUT TO\n");
    EXPECT_EQ(execute("deldest a:1 from main\r\n", backend), "DEL FROM\n");
    EXPECT_EQ(execute("putdest a:1", backend), "PUT a:1\n");
    EXPECT_EQ(execute("putdest a:1 from main", backend), "error: putdest takes 'to CLUSTER', not 'from'\n");
    EXPECT_EQ(execute("putdest a:1 to", backend), "error: putdest to needs a cluster name\n");
    EXPECT_EQ(execute("putdest a:1 to c extra", backend), "error: putdest takes one destination\n");
    EXPECT_EQ(execute(std::string("putdest a:1 to \x01\xff") + std::string(200, 'c'), backend).substr(0, 6), "PUT TO");
    EXPECT_EQ(backend.calls,
              (std::vector<std::string> {"putdest a:1 to main", "deldest a:1 from main", "putdest a:1",
                                         "putdest a:1 to \x01\xff" + std::string(200, 'c')}));
    // A backend without clusters (no --rules) answers the cluster forms with an error, never a change.
    FakeBackend plain;
    EXPECT_EQ(execute("putdest a:1 to main", plain),
              "error: putdest ... to main: clusters come from a rules file (--rules); this relay has one implicit "
              "cluster: putdest <destination>\n");
    EXPECT_EQ(execute("deldest a:1 from \x01", plain),
              "error: deldest ... from ?: clusters come from a rules file (--rules); this relay has one implicit "
              "cluster: deldest <destination>\n");
    EXPECT_TRUE(plain.calls.empty());
}

TEST(Execute, Help) {
    FakeBackend backend;
    const std::string expected =
        "commands: getdest | putdest <host:port[:instance]> [to <cluster>] [token=<secret>] | deldest "
        "<host:port[:instance]> [from <cluster>] [token=<secret>] | stats | help (one command per connection, "
        "e.g. echo getdest | nc localhost 2030; 'to'/'from' name a cluster of the --rules file)\n";
    EXPECT_EQ(help_text(), expected);
    EXPECT_EQ(execute("help", backend), expected);
    EXPECT_EQ(execute("help me", backend), expected);
    EXPECT_TRUE(backend.calls.empty());
}

TEST(Execute, GetdestAndStatsDelegate) {
    FakeBackend backend;
    EXPECT_EQ(execute("getdest", backend), "GETDEST\n");
    EXPECT_EQ(execute("stats\r\n", backend), "STATS\n");
    EXPECT_EQ(execute("  getdest  ", backend), "GETDEST\n");
    EXPECT_EQ(backend.calls, (std::vector<std::string> {"getdest", "stats", "getdest"}));
}

// --- json_escape ---------------------------------------------------------------------------------

TEST(JsonEscape, PlainTextUnchanged) {
    EXPECT_EQ(json_escape(""), "");
    EXPECT_EQ(json_escape("carbon:2003 [::1] / ~"), "carbon:2003 [::1] / ~");
    EXPECT_EQ(json_escape("m\xc3\xa9trique"), "m\xc3\xa9trique");
}

TEST(JsonEscape, QuotesAndBackslash) {
    EXPECT_EQ(json_escape("a\"b"), "a\\\"b");
    EXPECT_EQ(json_escape("a\\b"), "a\\\\b");
    EXPECT_EQ(json_escape("\"\\\""), "\\\"\\\\\\\"");
}

TEST(JsonEscape, ControlCharacters) {
    EXPECT_EQ(json_escape("\n\r\t"), "\\n\\r\\t");
    EXPECT_EQ(json_escape(std::string("\x00", 1)), "\\u0000");
    EXPECT_EQ(json_escape("\x01\x1f"), "\\u0001\\u001f");
    EXPECT_EQ(json_escape("\b\f"), "\\u0008\\u000c");
    EXPECT_EQ(json_escape("a\x1b[0m"), "a\\u001b[0m");
    EXPECT_EQ(json_escape("\x7f"), "\x7f");  // DEL needs no escape in JSON
    EXPECT_EQ(json_escape(" "), " ");
}

// --- rfc3339_nano --------------------------------------------------------------------------------

TEST(Rfc3339Nano, KnownInstant) { EXPECT_EQ(rfc3339_nano(1700000000123000000), "2023-11-14T22:13:20.123Z"); }

TEST(Rfc3339Nano, ZeroNanosHasNoFraction) {
    EXPECT_EQ(rfc3339_nano(0), "1970-01-01T00:00:00Z");
    EXPECT_EQ(rfc3339_nano(1700000000000000000), "2023-11-14T22:13:20Z");
}

TEST(Rfc3339Nano, TrailingZerosTrimmedLikeGo) {
    EXPECT_EQ(rfc3339_nano(1700000000100000000), "2023-11-14T22:13:20.1Z");
    EXPECT_EQ(rfc3339_nano(1700000000120000000), "2023-11-14T22:13:20.12Z");
    EXPECT_EQ(rfc3339_nano(1700000000000000001), "2023-11-14T22:13:20.000000001Z");
    EXPECT_EQ(rfc3339_nano(1700000000123456789), "2023-11-14T22:13:20.123456789Z");
    EXPECT_EQ(rfc3339_nano(1700000000000001000), "2023-11-14T22:13:20.000001Z");
    EXPECT_EQ(rfc3339_nano(1), "1970-01-01T00:00:00.000000001Z");
}

TEST(Rfc3339Nano, OtherDates) {
    EXPECT_EQ(rfc3339_nano(951782400000000000), "2000-02-29T00:00:00Z");  // leap day
    EXPECT_EQ(rfc3339_nano(4102444799999999999), "2099-12-31T23:59:59.999999999Z");
}

TEST(Rfc3339Nano, BeforeTheEpoch) {
    // Go: time.Unix(0, -1).UTC().Format(time.RFC3339Nano) == "1969-12-31T23:59:59.999999999Z".
    std::string text = rfc3339_nano(-1);
    EXPECT_EQ(rfc3339_nano(-1500000000), "1969-12-31T23:59:58.5Z");
    EXPECT_EQ(rfc3339_nano(-1000000000), "1969-12-31T23:59:59Z");
}

}  // namespace
}  // namespace polymur::admin
