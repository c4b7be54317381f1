// The carbon-c-relay rules parser: every statement, and every error names file, line and what was expected.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "route/rules_parser.hpp"

using namespace polymur::route::rules;

namespace {

RulesConfig parse_ok(const std::string& text) {
    RulesConfig config;
    std::string error;
    EXPECT_TRUE(parse_rules_text(text, "t.conf", config, error)) << error;
    return config;
}

std::string parse_error(const std::string& text) {
    RulesConfig config;
    std::string error;
    EXPECT_FALSE(parse_rules_text(text, "t.conf", config, error)) << text;
    return error;
}

}  // namespace

TEST(RulesParser, ClustersOfEveryType) {
    RulesConfig c = parse_ok(
        "cluster f forward 10.0.0.1 10.0.0.2:2004 [::1]:2005 [fe80::1] ::2:2006;\n"
        "cluster a any_of useall h1:1 h2:2;\n"
        "cluster o failover h3 h4 proto tcp type linemode transport plain;\n"
        "cluster c\n  carbon_ch replication 2 dynamic\n    127.0.0.1:2006=a\n    127.0.0.1:2007=b\n;\n"
        "cluster n fnv1a_ch 10.0.0.5=4d79d1 10.0.0.6;\n"
        "cluster j jump_fnv1a_ch replication 1 10.0.0.7 10.0.0.8;\n");
    ASSERT_EQ(c.clusters.size(), 6u);
    EXPECT_EQ(c.clusters[0].type, ClusterType::forward);
    ASSERT_EQ(c.clusters[0].members.size(), 5u);
    EXPECT_EQ(c.clusters[0].members[0].address(), "10.0.0.1:2003");
    EXPECT_EQ(c.clusters[0].members[1].address(), "10.0.0.2:2004");
    EXPECT_EQ(c.clusters[0].members[2].address(), "[::1]:2005");
    EXPECT_EQ(c.clusters[0].members[3].address(), "[fe80::1]:2003");
    EXPECT_EQ(c.clusters[0].members[4].address(), "[::2]:2006");
    EXPECT_EQ(c.clusters[1].type, ClusterType::any_of);
    EXPECT_TRUE(c.clusters[1].useall);
    EXPECT_EQ(c.clusters[2].type, ClusterType::failover);
    EXPECT_EQ(c.clusters[3].type, ClusterType::carbon_ch);
    EXPECT_EQ(c.clusters[3].replication, 2);
    EXPECT_TRUE(c.clusters[3].dynamic);
    EXPECT_EQ(c.clusters[3].where.line, 4);
    EXPECT_EQ(*c.clusters[3].members[1].instance, "b");
    EXPECT_EQ(c.clusters[3].members[1].where.line, 7);
    EXPECT_EQ(c.clusters[4].type, ClusterType::fnv1a_ch);
    EXPECT_FALSE(c.clusters[4].members[1].instance.has_value());
    EXPECT_EQ(c.clusters[5].type, ClusterType::jump_fnv1a_ch);
    EXPECT_EQ(c.warnings.size(), 1u) << "useall is accepted with a warning";
}

TEST(RulesParser, MemberTransportsBecomeDestinationSchemes) {
    RulesConfig c = parse_ok(
        "cluster t forward a transport gzip b:2004=x transport lz4 ssl c transport plain ssl d transport plain\n"
        "  e:2005 proto tcp transport gzip ssl type linemode;\n");
    ASSERT_EQ(c.clusters[0].members.size(), 5u);
    const std::vector<std::string> want = {"gzip://a:2003", "lz4+tls://b:2004:x", "tls://c:2003", "d:2003",
                                           "gzip+tls://e:2005"};
    for (size_t i = 0; i < want.size(); ++i) {
        const Member& m = c.clusters[0].members[i];
        EXPECT_EQ(m.destination_text(), want[i]);
        // What polymur registers parses back to the same server and wire.
        polymur::route::Destination d;
        std::string error;
        ASSERT_TRUE(polymur::route::parse_destination(m.destination_text(), d, error)) << error;
        EXPECT_EQ(d.address(), m.address());
        EXPECT_TRUE(d.wire == m.wire) << want[i];
    }
}

TEST(RulesParser, MatchRewriteAggregateInFileOrder) {
    RulesConfig c = parse_ok(
        "cluster x forward h; # a comment; match nothing\n"
        "match ^a\\. \"b c\" send to x stop;\n"
        "rewrite ^(a)\\.(.*) into \\_1.\\^2;\n"
        "match * validate ^[0-9]+ else log send to blackhole;\n"
        "match * validate \"^1 \" else drop;\n"
        "aggregate ^sys\\.(.*)\\.cpu every 10 seconds expire after 30 seconds compute sum write to sys.\\1.cpu;\n"
        "match\n  ^b\n  ^c\nsend to\n  x\n  x\n;\n");
    ASSERT_EQ(c.rules.size(), 6u);
    EXPECT_EQ(c.rules[0].kind, Rule::Kind::match);
    EXPECT_EQ(c.rules[1].kind, Rule::Kind::rewrite);
    EXPECT_EQ(c.rules[4].kind, Rule::Kind::aggregate);
    const Match& m0 = c.matches[0];
    EXPECT_EQ(m0.expressions, (std::vector<std::string> {"^a\\.", "b c"}));
    EXPECT_EQ(m0.clusters, std::vector<std::string> {"x"});
    EXPECT_TRUE(m0.stop);
    EXPECT_EQ(c.rewrites[0].expression, "^(a)\\.(.*)");
    EXPECT_EQ(c.rewrites[0].replacement, "\\_1.\\^2");
    EXPECT_TRUE(c.matches[1].blackhole);
    EXPECT_EQ(*c.matches[1].validate, "^[0-9]+");
    EXPECT_EQ(c.matches[1].validate_action, ValidateAction::log);
    EXPECT_EQ(*c.matches[2].validate, "^1 ");
    EXPECT_TRUE(c.matches[2].clusters.empty());
    EXPECT_EQ(c.aggregates[0].expressions, std::vector<std::string> {"^sys\\.(.*)\\.cpu"});
    EXPECT_EQ(c.aggregates[0].interval, 10);
    EXPECT_EQ(c.matches[3].where.line, 7);
    EXPECT_EQ(c.matches[3].clusters.size(), 2u);
}

// The fingerprint of the only aggregate rule of `rule` (clusters g and h exist).
uint64_t fingerprint_of(const std::string& rule) {
    RulesConfig c = parse_ok("cluster g forward h1;\ncluster h forward h2;\n" + rule);
    EXPECT_EQ(c.aggregates.size(), 1u) << rule;
    return c.aggregates.empty() ? 0 : aggregate_fingerprint(c.aggregates[0]);
}

TEST(RulesParser, AggregateFingerprintIsTheDefinitionNotTheText) {
    const std::string base =
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n";
    const uint64_t fp = fingerprint_of(base);
    // Equal rules: another layout, other lines before it, the aliases carbon-c-relay accepts, another place.
    EXPECT_EQ(fingerprint_of("# moved\n\nmatch ^z send to h;\naggregate\n  ^a\\.(x)\n  ^b\n  every 10 seconds\n"
                             "  expire after 30 seconds\n  timestamp at start of bucket\n"
                             "  compute sum write to\n    s.\\1\n  compute percentile095 write to p\n"
                             "  send to g\n  stop\n  ;\n"),
              fp);
    EXPECT_EQ(fingerprint_of("aggregate ^x every 1 seconds expire after 2 seconds compute avg write to a;\n"),
              fingerprint_of("aggregate ^x every 1 seconds expire after 2 seconds compute average write to a;\n"));
    EXPECT_EQ(fingerprint_of("aggregate ^x every 1 seconds expire after 2 seconds compute max write to a;\n"),
              fingerprint_of("aggregate ^x every 1 seconds expire after 2 seconds compute maximum write to a;\n"));
    // Every semantic change gives another number, and no two of these agree.
    const std::vector<std::string> changed = {
        "aggregate ^a\\.(y) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // expression
        "aggregate ^a\\.(x) every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // one expression less
        "aggregate ^b ^a\\.(x) every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // their order
        "aggregate ^a\\.(x) ^b every 5 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // interval
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 31 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // expiry
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at middle of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // timestamp position
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds "
        "compute sum write to s.\\1 compute percentile95 write to p send to g stop;\n",  // (end, the default)
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute count write to s.\\1 compute percentile95 write to p send to g stop;\n",  // function
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile90 write to p send to g stop;\n",  // percentile
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\_1 compute percentile95 write to p send to g stop;\n",  // written name
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute percentile95 write to p compute sum write to s.\\1 send to g stop;\n",  // compute order
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 send to g stop;\n",  // one compute less
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p compute min write to m send to g stop;\n",
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to h stop;\n",  // destination
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g h stop;\n",  // one more
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p send to g;\n",  // without stop
        "aggregate ^a\\.(x) ^b every 10 seconds expire after 30 seconds timestamp at start of bucket "
        "compute sum write to s.\\1 compute percentile95 write to p;\n",  // back through the rules
    };
    std::vector<uint64_t> seen = {fp};
    for (const std::string& rule : changed) {
        const uint64_t other = fingerprint_of(rule);
        EXPECT_EQ(std::count(seen.begin(), seen.end(), other), 0) << rule;
        seen.push_back(other);
    }
    // Field boundaries count: moving a character from one written name to the next is a change.
    EXPECT_NE(fingerprint_of("aggregate ^x every 1 seconds expire after 2 seconds compute sum write to ab "
                             "compute max write to c;\n"),
              fingerprint_of("aggregate ^x every 1 seconds expire after 2 seconds compute sum write to a "
                             "compute max write to bc;\n"));
}

TEST(RulesParser, AggregateEveryClause) {
    RulesConfig c = parse_ok(
        "cluster g forward h;\n"
        "aggregate\n  ^sys\\.dc[0-9]\\.(host-[0-9]+)\\.cpu\n  ^other\\.(x)\n"
        "  every 10 seconds\n  expire after 35 seconds\n  timestamp at start of bucket\n"
        "  compute sum write to\n    sum.\\1\n"
        "  compute cnt write to count.\\_1\n"
        "  compute percentile095 write to p95\n"
        "  compute avg write to avg compute maximum write to max compute minimum write to min\n"
        "  compute median write to med compute variance write to var compute stddev write to sd\n"
        "  send to g g stop;\n"
        "aggregate ^b every 1 seconds expire after 2 seconds compute percentile1 write to b.p1;\n"
        "aggregate ^c every 60 seconds expire after 61 seconds timestamp at middle of bucket compute max write to m;\n");
    ASSERT_EQ(c.aggregates.size(), 3u);
    ASSERT_EQ(c.rules.size(), 3u);
    const Aggregate& a = c.aggregates[0];
    EXPECT_EQ(a.expressions, (std::vector<std::string> {"^sys\\.dc[0-9]\\.(host-[0-9]+)\\.cpu", "^other\\.(x)"}));
    EXPECT_EQ(a.interval, 10);
    EXPECT_EQ(a.expire, 35);
    EXPECT_EQ(a.timestamp, BucketTimestamp::start);
    ASSERT_EQ(a.computes.size(), 9u);
    EXPECT_EQ(a.computes[0].function, AggregateFunction::sum);
    EXPECT_EQ(a.computes[0].metric, "sum.\\1");
    EXPECT_EQ(a.computes[0].where.line, 8);
    EXPECT_EQ(a.computes[1].function, AggregateFunction::count);
    EXPECT_EQ(a.computes[1].metric, "count.\\_1");
    EXPECT_EQ(a.computes[2].function, AggregateFunction::percentile);
    EXPECT_EQ(a.computes[2].percentile, 95);
    EXPECT_EQ(a.computes[2].label(), "percentile95");
    EXPECT_EQ(a.computes[3].label(), "average");
    EXPECT_EQ(a.computes[4].label(), "max");
    EXPECT_EQ(a.computes[5].label(), "min");
    EXPECT_EQ(a.computes[6].label(), "median");
    EXPECT_EQ(a.computes[7].label(), "variance");
    EXPECT_EQ(a.computes[8].label(), "stddev");
    EXPECT_EQ(a.clusters, (std::vector<std::string> {"g", "g"}));
    EXPECT_TRUE(a.stop);
    EXPECT_EQ(a.where.line, 2);
    const Aggregate& b = c.aggregates[1];
    EXPECT_EQ(b.timestamp, BucketTimestamp::end) << "carbon-c-relay's default";
    EXPECT_EQ(b.computes[0].percentile, 1);
    EXPECT_TRUE(b.clusters.empty());
    EXPECT_FALSE(b.stop);
    EXPECT_EQ(c.aggregates[2].timestamp, BucketTimestamp::middle);
}

TEST(RulesParser, ListenAndStatistics) {
    RulesConfig c = parse_ok(
        "cluster graphite forward 10.0.0.1;\n"
        "listen type linemode 2003 proto tcp 127.0.0.1:2004 proto udp /tmp/s.sock proto unix;\n"
        "listen type linemode transport gzip ssl /etc/cert.pem 2005 proto tcp;\n"
        "statistics submit every 30 seconds reset counters after interval prefix with carbon.relays.\\_2 "
        "send to graphite stop;\n");
    ASSERT_EQ(c.listens.size(), 2u);
    ASSERT_EQ(c.listens[0].addresses.size(), 3u);
    EXPECT_EQ(c.listens[0].addresses[1].address, "127.0.0.1:2004");
    EXPECT_EQ(c.listens[0].addresses[1].proto, "udp");
    EXPECT_EQ(c.listens[0].addresses[2].proto, "unix");
    EXPECT_EQ(c.listens[1].transport, "gzip");
    EXPECT_TRUE(c.listens[1].ssl);
    EXPECT_EQ(c.listens[1].pemcert, "/etc/cert.pem");
    ASSERT_TRUE(c.statistics.has_value());
    EXPECT_EQ(c.statistics->submit_every, 30);
    EXPECT_TRUE(c.statistics->reset_counters);
    EXPECT_EQ(*c.statistics->prefix, "carbon.relays.\\_2");
    EXPECT_EQ(c.statistics->send_to, std::vector<std::string> {"graphite"});
    EXPECT_TRUE(c.statistics->stop);

    RulesConfig d = parse_ok("cluster g forward h; send statistics to g stop;");
    EXPECT_TRUE(d.statistics->deprecated_form);
    EXPECT_TRUE(d.statistics->stop);
}

TEST(RulesParser, IncludeReadsFilesInPlace) {
    std::map<std::string, std::string> files = {{"a.conf", "cluster y forward h2;\nmatch ^a send to y;\n"},
                                                {"b.conf", "match ^b send to y;\n"}};
    IncludeResolver resolve = [](const std::string& pattern, std::vector<std::string>& out, std::string& error) {
        if (pattern == "*.conf") {
            out = {"a.conf", "b.conf"};
            return true;
        }
        error = "include '" + pattern + "' matches no file";
        return false;
    };
    FileReader read = [&](const std::string& path, std::string& text, std::string&) {
        text = files[path];
        return true;
    };
    RulesConfig c;
    std::string error;
    ASSERT_TRUE(parse_rules_text("match * send to blackhole;\ninclude *.conf;\nmatch ^c send to y;\n", "main.conf", c,
                                 error, resolve, read))
        << error;
    ASSERT_EQ(c.matches.size(), 4u);
    EXPECT_EQ(c.matches[1].where.file, "a.conf");
    EXPECT_EQ(c.matches[2].where.file, "b.conf");
    EXPECT_EQ(c.matches[3].where.file, "main.conf");
    EXPECT_EQ(c.matches[3].where.line, 3);

    RulesConfig d;
    EXPECT_FALSE(parse_rules_text("\ninclude nothing*;", "main.conf", d, error, resolve, read));
    EXPECT_EQ(error, "main.conf:2: include 'nothing*' matches no file");
    files["loop.conf"] = "include loop.conf;";
    IncludeResolver self = [](const std::string& p, std::vector<std::string>& out, std::string&) {
        out = {p};
        return true;
    };
    RulesConfig e;
    EXPECT_FALSE(parse_rules_text("include loop.conf;", "main.conf", e, error, self, read));
    EXPECT_NE(error.find("include loop"), std::string::npos) << error;
    files["bad.conf"] = "\n\nmatch ^x send to;";
    RulesConfig f;
    IncludeResolver bad = [](const std::string&, std::vector<std::string>& out, std::string&) {
        out = {"bad.conf"};
        return true;
    };
    EXPECT_FALSE(parse_rules_text("include bad.conf;", "main.conf", f, error, bad, read));
    EXPECT_EQ(error, "bad.conf:3: expected a cluster name, found ';'");
}

TEST(RulesParser, EveryErrorNamesFileLineAndWhatWasExpected) {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"bogus;",
         "t.conf:1: expected 'cluster', 'match', 'rewrite', 'aggregate', 'statistics', 'send statistics', "
         "'listen' or 'include', found 'bogus'"},
        {"cluster x forward h", "t.conf:1: expected ';', found end of file"},
        {"cluster x forward;", "t.conf:1: expected a member host[:port][=instance], found ';'"},
        {"cluster x\n roundrobin h;",
         "t.conf:2: expected a cluster type (forward, any_of, failover, carbon_ch, "
         "fnv1a_ch, jump_fnv1a_ch or file), found 'roundrobin'"},
        {"cluster x forward h;\ncluster x forward h;", "t.conf:2: cluster 'x' is defined twice"},
        {"cluster blackhole forward h;", "t.conf:1: 'blackhole' is reserved and cannot name a cluster"},
        {"cluster x forward h:99999;", "t.conf:1: bad member 'h:99999': bad port '99999'"},
        {"cluster x forward h:;", "t.conf:1: bad member 'h:': empty port"},
        {"cluster x forward [::1;", "t.conf:1: bad member '[::1': missing ']'"},
        {"cluster x forward :2003;", "t.conf:1: bad member ':2003': empty host"},
        {"cluster x carbon_ch replication 3 a b;", "t.conf:1: cluster x: replication 3 is larger than its 2 members"},
        {"cluster x carbon_ch replication z a;", "t.conf:1: expected a replication count, found 'z'"},
        {"cluster x carbon_ch replication 0 a;", "t.conf:1: a replication count must be between 1 and 255, found 0"},
        {"cluster x forward h proto udp;",
         "t.conf:1: member h:2003: proto udp is not supported by polymur (its "
         "outputs are durable TCP streams)"},
        {"cluster x forward h proto sctp;", "t.conf:1: expected 'tcp' or 'udp', found 'sctp'"},
        {"cluster x forward h transport snappy;",
         "t.conf:1: member h:2003: transport snappy is not supported by polymur (gzip and lz4 are)"},
        {"cluster x forward h transport zstd;", "t.conf:1: expected 'plain', 'gzip', 'lz4' or 'snappy', found 'zstd'"},
        {"cluster x forward h transport gzip;\ncluster y forward h transport gzip ssl;",
         "t.conf:2: cannot set transport gzip ssl for server h:2003: server was previously defined with transport "
         "gzip"},
        {"cluster x forward h;\ncluster y forward h transport lz4;",
         "t.conf:2: cannot set transport lz4 for server h:2003: server was previously defined with transport plain"},
        {"cluster x forward h type pickle;", "t.conf:1: expected 'linemode', found 'pickle'"},
        {"cluster x file /tmp/out;",
         "t.conf:1: cluster x: file clusters are not supported by polymur (it relays to "
         "network destinations only)"},
        {"cluster x forward h=1;\ncluster y forward h;",
         "t.conf:2: cannot define server h:2003 without instance: "
         "server was previously defined with instance '1'"},
        {"cluster x forward h;\ncluster y forward h=2;",
         "t.conf:2: cannot set instance '2' for server h:2003: server "
         "was previously defined without instance"},
        {"cluster x forward h=1;\ncluster y forward h=2;",
         "t.conf:2: cannot set instance '2' for server h:2003: "
         "server was previously defined with instance '1'"},
        {"cluster x forward h;\ncluster y any_of h i;",
         "t.conf:2: cannot share server h:2003 with any_of/failover "
         "cluster 'y'"},
        {"match ^a send to nowhere;", "t.conf:1: unknown cluster 'nowhere'"},
        {"match send to x;", "t.conf:1: expected '*' or an expression, found 'send'"},
        {"match ^a;", "t.conf:1: expected 'send to', found ';'"},
        {"cluster x forward h; match ^a send x;", "t.conf:1: expected 'to', found 'x'"},
        {"cluster x forward h; match ^a send to x blackhole;",
         "t.conf:1: blackhole cannot be combined with other "
         "clusters"},
        {"cluster x forward h; match ^a send to x stop stop;", "t.conf:1: expected ';', found 'stop'"},
        {"match ^a validate ^1 send to blackhole;", "t.conf:1: expected 'else', found 'send'"},
        {"match ^a validate ^1 else ignore;", "t.conf:1: expected 'log' or 'drop', found 'ignore'"},
        {"match ^a route using x send to blackhole;", "t.conf:1: 'route using' is not supported by polymur"},
        {"rewrite ^a;", "t.conf:1: expected 'into', found ';'"},
        {"rewrite ^a into;", "t.conf:1: expected a replacement, found ';'"},
        {"aggregate ^a;", "t.conf:1: expected 'every', found ';'"},
        {"aggregate every 1 seconds;", "t.conf:1: expected an expression, found 'every'"},
        {"aggregate ^a every 0 seconds expire after 5 seconds compute sum write to x;",
         "t.conf:1: an interval in seconds must be between 1 and 31622400, found 0"},
        {"aggregate ^a every ten seconds;", "t.conf:1: expected an interval in seconds, found 'ten'"},
        {"aggregate ^a every 10 minutes;", "t.conf:1: expected 'seconds', found 'minutes'"},
        {"aggregate ^a every 10 seconds compute sum write to x;", "t.conf:1: expected 'expire', found 'compute'"},
        {"aggregate ^a every 10 seconds expire after 10 seconds compute sum write to x;",
         "t.conf:1: expire after 10 seconds must be greater than the interval (10 seconds)"},
        {"aggregate ^a every 10 seconds expire after 15 seconds;", "t.conf:1: expected 'compute', found ';'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds timestamp at begin of bucket compute sum write to x;",
         "t.conf:1: expected 'start', 'middle' or 'end', found 'begin'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds timestamp at end compute sum write to x;",
         "t.conf:1: expected 'of', found 'compute'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds\n compute mean write to x;",
         "t.conf:2: expected 'sum', 'count', 'max', 'min', 'average', 'median', 'percentile<1-99>', 'variance' or "
         "'stddev', found 'mean'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute percentile100 write to x;",
         "t.conf:1: percentile<N>: N must be a whole number between 1 and 99, found 'percentile100'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute percentile write to x;",
         "t.conf:1: percentile<N>: N must be a whole number between 1 and 99, found 'percentile'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute percentile9.5 write to x;",
         "t.conf:1: percentile<N>: N must be a whole number between 1 and 99, found 'percentile9.5'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds" +
             [] {
                 std::string many;
                 for (int i = 0; i < 65; ++i) many += "\n compute sum write to x";
                 return many;
             }() +
             ";",
         "t.conf:66: at most 64 compute clauses per aggregate"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute sum to x;",
         "t.conf:1: expected 'write', found 'to'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute sum write to;",
         "t.conf:1: expected a metric name, found ';'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute sum write to x stop;",
         "t.conf:1: expected ';', found 'stop'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute sum write to x send to nowhere;",
         "t.conf:1: unknown cluster 'nowhere'"},
        {"aggregate ^a every 10 seconds expire after 15 seconds compute sum write to x send to blackhole;",
         "t.conf:1: 'blackhole' cannot be used here"},
        {"statistics submit every 0 seconds;", "t.conf:1: an interval in seconds must be between 1 and 86400, found 0"},
        {"statistics prefix carbon;", "t.conf:1: expected 'with', found 'carbon'"},
        {"statistics send to blackhole;", "t.conf:1: 'blackhole' cannot be used here"},
        {"statistics;\nstatistics;", "t.conf:2: statistics is configured twice"},
        {"send statistics x;", "t.conf:1: expected 'to', found 'x'"},
        {"listen type pickle 2003 proto tcp;", "t.conf:1: expected 'linemode', found 'pickle'"},
        {"listen type linemode 2003;", "t.conf:1: expected 'proto', found ';'"},
        {"listen type linemode 2003 proto sctp;", "t.conf:1: expected 'tcp', 'udp' or 'unix', found 'sctp'"},
        {"listen type linemode;", "t.conf:1: expected an address with 'proto', found ';'"},
        {"listen type linemode transport zstd 2003 proto tcp;",
         "t.conf:1: expected 'plain', 'gzip', 'lz4' or "
         "'snappy', found 'zstd'"},
        {"include;", "t.conf:1: expected a file or glob, found ';'"},
        {"include a.conf;", "t.conf:1: include is not available here"},
        {"match \"^a send to x;", "t.conf:1: unterminated quoted string"},
        {"\n\n# comment\nmatch ^a # comment\n send to\n\n nowhere;", "t.conf:7: unknown cluster 'nowhere'"},
    };
    for (const auto& [text, expected] : cases) EXPECT_EQ(parse_error(text), expected) << text;
}

TEST(RulesParser, RealFileAndMissingFile) {
    RulesConfig c;
    std::string error;
    ASSERT_TRUE(parse_rules_file(std::string(POLYMUR_TEST_DATA) + "/rules/regex.conf", c, error)) << error;
    EXPECT_GE(c.matches.size(), 17u);
    RulesConfig d;
    EXPECT_FALSE(parse_rules_file("/nonexistent/rules.conf", d, error));
    EXPECT_EQ(error, "cannot read '/nonexistent/rules.conf': No such file or directory");
}
