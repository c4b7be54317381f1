#include "route/rules_parser.hpp"

#include <glob.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace polymur::route::rules {

const char* cluster_type_name(ClusterType type) {
    switch (type) {
        case ClusterType::forward: return "forward";
        case ClusterType::any_of: return "any_of";
        case ClusterType::failover: return "failover";
        case ClusterType::carbon_ch: return "carbon_ch";
        case ClusterType::fnv1a_ch: return "fnv1a_ch";
        case ClusterType::jump_fnv1a_ch: return "jump_fnv1a_ch";
    }
    return "?";
}

const char* aggregate_function_name(AggregateFunction function) {
    switch (function) {
        case AggregateFunction::sum: return "sum";
        case AggregateFunction::count: return "count";
        case AggregateFunction::max: return "max";
        case AggregateFunction::min: return "min";
        case AggregateFunction::average: return "average";
        case AggregateFunction::median: return "median";
        case AggregateFunction::percentile: return "percentile";
        case AggregateFunction::variance: return "variance";
        case AggregateFunction::stddev: return "stddev";
    }
    return "?";
}

namespace {

// FNV-1a, 64 bits, over fields each preceded by its length: no two definitions share a byte sequence.
class DefinitionHash {
public:
    void number(uint64_t n) {
        for (int i = 0; i < 8; ++i) byte(uint8_t(n >> (8 * i)));
    }
    void text(std::string_view s) {
        number(s.size());
        for (char c : s) byte(uint8_t(c));
    }
    uint64_t value() const { return h_; }

private:
    void byte(uint8_t b) { h_ = (h_ ^ b) * 0x100000001b3ull; }
    uint64_t h_ = 0xcbf29ce484222325ull;
};

}  // namespace

uint64_t aggregate_fingerprint(const Aggregate& a, size_t occurrence) {
    DefinitionHash h;
    h.text("aggregate 1");  // the version of this definition: a new field changes it
    h.number(a.expressions.size());
    for (const std::string& e : a.expressions) h.text(e);
    h.number(uint64_t(a.interval));
    h.number(uint64_t(a.expire));
    h.number(uint64_t(a.timestamp));
    h.number(a.computes.size());
    for (const Compute& c : a.computes) {
        h.text(c.label());
        h.text(c.metric);
    }
    h.number(a.clusters.size());
    for (const std::string& c : a.clusters) h.text(c);
    h.number(a.stop);
    if (occurrence) h.number(occurrence);  // the first keeps the definition's own number
    return h.value();
}

std::string Compute::label() const {
    if (function == AggregateFunction::percentile) return "percentile" + std::to_string(percentile);
    return aggregate_function_name(function);
}

std::string Member::address() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

namespace {
// A member's transport as the rules file writes it: "plain", "gzip ssl", ...
std::string transport_text(const Wire& wire) {
    return std::string(protocol::compression_name(wire.compression) == std::string("none")
                           ? "plain"
                           : protocol::compression_name(wire.compression)) +
        (wire.tls ? " ssl" : "");
}
}  // namespace

std::string Member::destination_text() const {
    const std::string scheme = wire_scheme(wire);
    return (scheme.empty() ? "" : scheme + "://") + address() + (instance ? ":" + *instance : "");
}

const Cluster* RulesConfig::find_cluster(std::string_view name) const {
    for (const Cluster& cluster : clusters)
        if (cluster.name == name) return &cluster;
    return nullptr;
}

namespace {

struct Token {
    std::string text;
    int line = 0;
    bool quoted = false;
    bool semicolon = false;
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

// Words end at whitespace, ';' or '#' (a comment runs to the end of the line wherever it starts);
// "double quotes" make one word of anything up to the next unescaped quote.
bool tokenize(std::string_view text, const std::string& file, std::vector<Token>& tokens, std::string& error) {
    int line = 1;
    size_t i = 0;
    while (i < text.size()) {
        char c = text[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (is_space(c)) {
            ++i;
        } else if (c == '#') {
            while (i < text.size() && text[i] != '\n') ++i;
        } else if (c == ';') {
            tokens.push_back({";", line, false, true});
            ++i;
        } else if (c == '"') {
            Token token {"", line, true, false};
            ++i;
            for (;;) {
                if (i >= text.size()) {
                    error = file + ":" + std::to_string(token.line) + ": unterminated quoted string";
                    return false;
                }
                char q = text[i];
                if (q == '"') break;
                if (q == '\\' && i + 1 < text.size() && text[i + 1] == '"') {
                    token.text.push_back('"');
                    i += 2;
                    continue;
                }
                if (q == '\n') ++line;
                token.text.push_back(q);
                ++i;
            }
            ++i;
            tokens.push_back(std::move(token));
        } else {
            Token token {"", line, false, false};
            while (i < text.size() && !is_space(text[i]) && text[i] != ';' && text[i] != '#')
                token.text.push_back(text[i++]);
            tokens.push_back(std::move(token));
        }
    }
    return true;
}

bool parse_port(std::string_view text, uint16_t& port) {
    if (text.empty() || text.size() > 5) return false;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return false;
        value = value * 10 + unsigned(c - '0');
    }
    if (value == 0 || value > 65535) return false;
    port = uint16_t(value);
    return true;
}

class Parser {
public:
    Parser(RulesConfig& out, const IncludeResolver& resolve, const FileReader& read, int depth)
            : out_(out), resolve_(resolve), read_(read), depth_(depth) {}

    bool parse(std::string_view text, const std::string& file, std::string& error) {
        file_ = file;
        if (!tokenize(text, file, tokens_, error)) return false;
        pos_ = 0;
        while (pos_ < tokens_.size()) {
            if (!statement()) {
                error = error_;
                return false;
            }
        }
        return true;
    }

private:
    RulesConfig& out_;
    const IncludeResolver& resolve_;
    const FileReader& read_;
    int depth_;
    std::string file_;
    std::vector<Token> tokens_;
    size_t pos_ = 0;
    int statement_line_ = 1;  // where the statement being read starts
    std::string error_;

    int line() const {
        if (pos_ < tokens_.size()) return tokens_[pos_].line;
        return tokens_.empty() ? 1 : tokens_.back().line;
    }
    Where where() const { return {file_, statement_line_}; }
    bool fail(const std::string& reason) {
        error_ = file_ + ":" + std::to_string(line()) + ": " + reason;
        return false;
    }
    std::string found() const {
        if (pos_ >= tokens_.size()) return "end of file";
        if (tokens_[pos_].semicolon) return "';'";
        return "'" + tokens_[pos_].text + "'";
    }
    bool expected(const std::string& what) { return fail("expected " + what + ", found " + found()); }
    bool at_end() const { return pos_ >= tokens_.size(); }
    bool at_semicolon() const { return !at_end() && tokens_[pos_].semicolon; }
    bool at_keyword(std::string_view word) const {
        return !at_end() && !tokens_[pos_].quoted && !tokens_[pos_].semicolon && tokens_[pos_].text == word;
    }
    bool accept(std::string_view word) {
        if (!at_keyword(word)) return false;
        ++pos_;
        return true;
    }
    bool require(std::string_view word) {
        if (accept(word)) return true;
        return expected("'" + std::string(word) + "'");
    }
    bool at_word() const { return !at_end() && !tokens_[pos_].semicolon; }
    bool end_statement() {
        if (at_semicolon()) {
            ++pos_;
            return true;
        }
        return expected("';'");
    }
    bool word(std::string& value, const std::string& what) {
        if (!at_word()) return expected(what);
        value = tokens_[pos_++].text;
        return true;
    }
    bool number(int& value, const std::string& what, int min, int max) {
        if (!at_word()) return expected(what);
        const std::string& text = tokens_[pos_].text;
        if (text.empty() || text.size() > 9 ||
            !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return expected(what);
        int v = std::stoi(text);
        if (v < min || v > max)
            return fail(what + " must be between " + std::to_string(min) + " and " + std::to_string(max) + ", found " +
                        text);
        value = v;
        ++pos_;
        return true;
    }
    void warn(const std::string& message) {
        out_.warnings.push_back(file_ + ":" + std::to_string(statement_line_) + ": " + message);
    }

    static bool is_keyword(std::string_view w) {
        static const char* const kWords[] = {
            "cluster", "match",  "rewrite", "aggregate", "send",    "statistics", "listen",    "include", "validate",
            "else",    "stop",   "to",      "into",      "proto",   "transport",  "type",      "ssl",     "replication",
            "dynamic", "useall", "every",   "expire",    "compute", "write",      "timestamp", "route"};
        for (const char* k : kWords)
            if (w == k) return true;
        return false;
    }

    bool statement() {
        statement_line_ = line();
        if (accept("cluster")) return cluster();
        if (accept("match")) return match();
        if (accept("rewrite")) return rewrite();
        if (accept("aggregate")) return aggregate();
        if (accept("statistics")) return statistics(false);
        if (at_keyword("send")) {
            ++pos_;
            if (!require("statistics") || !require("to")) return false;
            return statistics(true);
        }
        if (accept("listen")) return listen();
        if (accept("include")) return include();
        return expected(
            "'cluster', 'match', 'rewrite', 'aggregate', 'statistics', 'send statistics', 'listen' or 'include'");
    }

    bool member(Cluster& cluster) {
        Member m;
        m.where = {file_, line()};
        std::string text = tokens_[pos_++].text;
        std::string_view rest = text;
        size_t eq = rest.find('=');
        if (eq != std::string_view::npos) {
            m.instance = std::string(rest.substr(eq + 1));
            rest = rest.substr(0, eq);
        }
        std::string_view port_text;
        if (!rest.empty() && rest[0] == '[') {
            size_t close = rest.find(']');
            if (close == std::string_view::npos) return fail("bad member '" + text + "': missing ']'");
            m.host = std::string(rest.substr(1, close - 1));
            std::string_view after = rest.substr(close + 1);
            if (!after.empty()) {
                if (after[0] != ':') return fail("bad member '" + text + "': expected ':port' after ']'");
                port_text = after.substr(1);
                if (port_text.empty()) return fail("bad member '" + text + "': empty port");
            }
        } else {
            size_t first = rest.find(':');
            size_t last = rest.rfind(':');
            if (first != std::string_view::npos && first == last) {
                m.host = std::string(rest.substr(0, first));
                port_text = rest.substr(first + 1);
                if (port_text.empty()) return fail("bad member '" + text + "': empty port");
            } else if (first != std::string_view::npos) {
                // An unbracketed IPv6 address: the part after the last ':' is the port (the manual: "either a
                // port must be given, or the IPv6 address surrounded by brackets").
                m.host = std::string(rest.substr(0, last));
                port_text = rest.substr(last + 1);
            } else {
                m.host = std::string(rest);
            }
        }
        if (m.host.empty()) return fail("bad member '" + text + "': empty host");
        if (!port_text.empty() && !parse_port(port_text, m.port))
            return fail("bad member '" + text + "': bad port '" + std::string(port_text) + "'");
        for (;;) {
            if (accept("proto")) {
                std::string proto;
                if (!word(proto, "'tcp' or 'udp'")) return false;
                if (proto == "udp") {
                    --pos_;
                    return fail("member " + m.address() +
                                ": proto udp is not supported by polymur (its outputs are durable TCP streams)");
                }
                if (proto != "tcp") {
                    --pos_;
                    return expected("'tcp' or 'udp'");
                }
            } else if (accept("type")) {
                if (!require("linemode")) return false;
            } else if (accept("transport")) {
                // carbon-c-relay's `transport plain|gzip|lz4|snappy [ssl]`: compression, then TLS around it.
                std::string transport;
                if (!word(transport, "'plain', 'gzip', 'lz4' or 'snappy'")) return false;
                if (transport == "gzip" || transport == "lz4") {
                    m.wire.compression = transport == "gzip" ? protocol::Compression::gzip : protocol::Compression::lz4;
                } else if (transport == "snappy") {
                    --pos_;
                    return fail("member " + m.address() +
                                ": transport snappy is not supported by polymur (gzip and lz4 are)");
                } else if (transport != "plain") {
                    --pos_;
                    return expected("'plain', 'gzip', 'lz4' or 'snappy'");
                }
                if (accept("ssl")) m.wire.tls = true;
            } else {
                break;
            }
        }
        cluster.members.push_back(std::move(m));
        return true;
    }

    bool cluster() {
        Cluster c;
        c.where = where();
        if (!word(c.name, "a cluster name")) return false;
        if (c.name == "blackhole") {
            --pos_;
            return fail("'blackhole' is reserved and cannot name a cluster");
        }
        if (out_.find_cluster(c.name)) {
            --pos_;
            return fail("cluster '" + c.name + "' is defined twice");
        }
        std::string type;
        if (!at_word()) return expected("a cluster type");
        type = tokens_[pos_].text;
        if (type == "forward" || type == "any_of" || type == "failover") {
            ++pos_;
            c.type = type == "forward" ? ClusterType::forward
                : type == "any_of"     ? ClusterType::any_of
                                       : ClusterType::failover;
            if (accept("useall")) {
                c.useall = true;
                warn("cluster " + c.name +
                     ": useall is accepted; polymur resolves each host name to one address when it connects");
            }
        } else if (type == "carbon_ch" || type == "fnv1a_ch" || type == "jump_fnv1a_ch") {
            ++pos_;
            c.type = type == "carbon_ch" ? ClusterType::carbon_ch
                : type == "fnv1a_ch"     ? ClusterType::fnv1a_ch
                                         : ClusterType::jump_fnv1a_ch;
            if (accept("replication") && !number(c.replication, "a replication count", 1, 255)) return false;
            if (accept("dynamic")) c.dynamic = true;
        } else if (type == "file") {
            return fail("cluster " + c.name +
                        ": file clusters are not supported by polymur (it relays to network destinations only)");
        } else {
            return expected("a cluster type (forward, any_of, failover, carbon_ch, fnv1a_ch, jump_fnv1a_ch or file)");
        }
        while (at_word()) {
            if (!tokens_[pos_].quoted && is_keyword(tokens_[pos_].text))
                return expected("a member host[:port][=instance] or ';'");
            if (!member(c)) return false;
        }
        if (c.members.empty()) return expected("a member host[:port][=instance]");
        if (!check_servers(c)) return false;
        if (c.replication > int(c.members.size()))
            return fail("cluster " + c.name + ": replication " + std::to_string(c.replication) +
                        " is larger than its " + std::to_string(c.members.size()) + " members");
        if (!end_statement()) return false;
        out_.clusters.push_back(std::move(c));
        return true;
    }

    // carbon-c-relay's rules for a server (host:port) named in several places: one instance (or none) for it
    // everywhere, and a member of an any_of or failover cluster is not named by an earlier cluster.
    bool check_servers(const Cluster& c) {
        const bool exclusive = c.type == ClusterType::any_of || c.type == ClusterType::failover;
        std::vector<const Member*> here;
        for (const Member& m : c.members) {
            const Member* previous = nullptr;
            for (const Cluster& other : out_.clusters)
                for (const Member& o : other.members)
                    if (!previous && o.address() == m.address()) previous = &o;
            for (const Member* o : here)
                if (!previous && o->address() == m.address()) previous = o;
            here.push_back(&m);
            if (!previous) continue;
            auto at = [&](const std::string& reason) {
                error_ = m.where.file + ":" + std::to_string(m.where.line) + ": " + reason;
                return false;
            };
            bool in_earlier_cluster = previous->where.line != m.where.line || previous->where.file != m.where.file ||
                std::find(here.begin(), here.end(), previous) == here.end();
            if (exclusive && in_earlier_cluster)
                return at("cannot share server " + m.address() + " with any_of/failover cluster '" + c.name + "'");
            if (previous->instance && !m.instance)
                return at("cannot define server " + m.address() +
                          " without instance: server was previously defined with instance '" + *previous->instance +
                          "'");
            if (!previous->instance && m.instance)
                return at("cannot set instance '" + *m.instance + "' for server " + m.address() +
                          ": server was previously defined without instance");
            if (!(previous->wire == m.wire))
                return at("cannot set transport " + transport_text(m.wire) + " for server " + m.address() +
                          ": server was previously defined with transport " + transport_text(previous->wire));
            if (previous->instance && m.instance && *previous->instance != *m.instance)
                return at("cannot set instance '" + *m.instance + "' for server " + m.address() +
                          ": server was previously defined with instance '" + *previous->instance + "'");
        }
        return true;
    }

    bool cluster_list(std::vector<std::string>& names, bool& blackhole, bool allow_blackhole) {
        while (at_word() && !at_keyword("stop")) {
            std::string name = tokens_[pos_].text;
            if (name == "blackhole" && !tokens_[pos_].quoted) {
                if (!allow_blackhole) return fail("'blackhole' cannot be used here");
                if (!names.empty() || blackhole) return fail("blackhole cannot be combined with other clusters");
                blackhole = true;
                ++pos_;
                continue;
            }
            if (blackhole) return fail("blackhole cannot be combined with other clusters");
            if (!out_.find_cluster(name)) return fail("unknown cluster '" + name + "'");
            names.push_back(name);
            ++pos_;
        }
        if (names.empty() && !blackhole) return expected("a cluster name");
        return true;
    }

    bool match() {
        Match m;
        m.where = where();
        while (at_word() &&
               !(!tokens_[pos_].quoted &&
                 (tokens_[pos_].text == "validate" || tokens_[pos_].text == "send" || tokens_[pos_].text == "route" ||
                  tokens_[pos_].text == "stop"))) {
            m.expressions.push_back(tokens_[pos_++].text);
        }
        if (m.expressions.empty()) return expected("'*' or an expression");
        if (accept("route")) return fail("'route using' is not supported by polymur");
        if (accept("validate")) {
            std::string expression;
            if (!word(expression, "a validate expression")) return false;
            m.validate = expression;
            if (!require("else")) return false;
            if (accept("log")) m.validate_action = ValidateAction::log;
            else if (accept("drop")) m.validate_action = ValidateAction::drop;
            else return expected("'log' or 'drop'");
        }
        if (accept("send")) {
            if (!require("to")) return false;
            if (!cluster_list(m.clusters, m.blackhole, true)) return false;
        } else if (!m.validate) {
            return expected("'send to'");
        }
        if (accept("stop")) m.stop = true;
        if (!end_statement()) return false;
        out_.rules.push_back({Rule::Kind::match, out_.matches.size()});
        out_.matches.push_back(std::move(m));
        return true;
    }

    bool rewrite() {
        Rewrite r;
        r.where = where();
        if (!word(r.expression, "an expression")) return false;
        if (!require("into")) return false;
        if (!word(r.replacement, "a replacement")) return false;
        if (!end_statement()) return false;
        out_.rules.push_back({Rule::Kind::rewrite, out_.rewrites.size()});
        out_.rewrites.push_back(std::move(r));
        return true;
    }

    // aggregate EXPR ... every N seconds expire after M seconds [timestamp at start|middle|end of bucket]
    //     compute FUNCTION write to METRIC [compute ...] [send to CLUSTER ... [stop]] ;
    bool aggregate() {
        Aggregate a;
        a.where = where();
        while (at_word() && !at_keyword("every")) a.expressions.push_back(tokens_[pos_++].text);
        if (a.expressions.empty()) return expected("an expression");
        if (!require("every") || !number(a.interval, "an interval in seconds", 1, 86400 * 366) || !require("seconds"))
            return false;
        if (!require("expire") || !require("after")) return false;
        if (!number(a.expire, "an expiry in seconds", 1, 86400 * 366)) return false;
        if (a.expire <= a.interval) {
            --pos_;
            return fail("expire after " + std::to_string(a.expire) + " seconds must be greater than the interval (" +
                        std::to_string(a.interval) + " seconds)");
        }
        if (!require("seconds")) return false;
        if (accept("timestamp")) {
            if (!require("at")) return false;
            if (accept("start")) a.timestamp = BucketTimestamp::start;
            else if (accept("middle")) a.timestamp = BucketTimestamp::middle;
            else if (accept("end")) a.timestamp = BucketTimestamp::end;
            else return expected("'start', 'middle' or 'end'");
            if (!require("of") || !require("bucket")) return false;
        }
        if (!at_keyword("compute")) return expected("'compute'");
        while (at_keyword("compute")) {
            if (a.computes.size() >= kMaxAggregateComputes)
                return fail("at most " + std::to_string(kMaxAggregateComputes) + " compute clauses per aggregate");
            ++pos_;
            Compute c;
            c.where = {file_, line()};
            if (!compute_function(c)) return false;
            if (!require("write") || !require("to")) return false;
            if (!word(c.metric, "a metric name")) return false;
            a.computes.push_back(std::move(c));
        }
        if (accept("send")) {
            bool blackhole = false;
            if (!require("to") || !cluster_list(a.clusters, blackhole, false)) return false;
            if (accept("stop")) a.stop = true;
        }
        if (!end_statement()) return false;
        out_.rules.push_back({Rule::Kind::aggregate, out_.aggregates.size()});
        out_.aggregates.push_back(std::move(a));
        return true;
    }

    bool compute_function(Compute& c) {
        static constexpr std::string_view kExpected =
            "'sum', 'count', 'max', 'min', 'average', 'median', 'percentile<1-99>', 'variance' or 'stddev'";
        if (!at_word() || tokens_[pos_].quoted) return expected(std::string(kExpected));
        const std::string& text = tokens_[pos_].text;
        struct Name {
            std::string_view word;
            AggregateFunction function;
        };
        static constexpr Name kNames[] = {
            {"sum", AggregateFunction::sum},           {"count", AggregateFunction::count},
            {"cnt", AggregateFunction::count},         {"max", AggregateFunction::max},
            {"maximum", AggregateFunction::max},       {"min", AggregateFunction::min},
            {"minimum", AggregateFunction::min},       {"average", AggregateFunction::average},
            {"avg", AggregateFunction::average},       {"median", AggregateFunction::median},
            {"variance", AggregateFunction::variance}, {"stddev", AggregateFunction::stddev}};
        for (const Name& name : kNames)
            if (text == name.word) {
                c.function = name.function;
                ++pos_;
                return true;
            }
        if (text.rfind("percentile", 0) == 0) {
            std::string_view digits = std::string_view(text).substr(10);
            int value = 0;
            bool ok = !digits.empty();
            for (char d : digits) {
                if (d < '0' || d > '9') ok = false;
                else value = std::min(value * 10 + (d - '0'), 1000);  // leading zeros are allowed (percentile095)
            }
            if (!ok || value < 1 || value > 99)
                return fail("percentile<N>: N must be a whole number between 1 and 99, found '" + text + "'");
            c.function = AggregateFunction::percentile;
            c.percentile = value;
            ++pos_;
            return true;
        }
        return expected(std::string(kExpected));
    }

    bool statistics(bool deprecated) {
        Statistics s;
        s.where = where();
        s.deprecated_form = deprecated;
        if (out_.statistics) return fail("statistics is configured twice");
        bool blackhole = false;
        if (deprecated) {
            if (!cluster_list(s.send_to, blackhole, false)) return false;
        } else {
            for (;;) {
                if (accept("submit")) {
                    if (!require("every") || !number(s.submit_every, "an interval in seconds", 1, 86400) ||
                        !require("seconds"))
                        return false;
                } else if (accept("reset")) {
                    if (!require("counters") || !require("after") || !require("interval")) return false;
                    s.reset_counters = true;
                } else if (accept("prefix")) {
                    std::string prefix;
                    if (!require("with") || !word(prefix, "a prefix")) return false;
                    s.prefix = prefix;
                } else if (accept("send")) {
                    if (!require("to") || !cluster_list(s.send_to, blackhole, false)) return false;
                } else {
                    break;
                }
            }
        }
        if (accept("stop")) s.stop = true;
        if (!end_statement()) return false;
        // polymur's own statistics are its self-metrics: sent every --self-metrics-interval, named after
        // --self-metrics-prefix, into its own listener, so the rules route them like any metric (as carbon-c-relay
        // routes its statistics without `send to`).
        warn(std::string(deprecated ? "send statistics" : "statistics") +
             " is not applied: polymur's statistics are its self-metrics (--self-metrics-interval, "
             "--self-metrics-prefix), routed by these rules like any metric" +
             (s.send_to.empty() ? "" : "; for 'send to', put 'match ^PREFIX\\. send to CLUSTER stop;' first") +
             (s.reset_counters ? "; its counters are never reset" : ""));
        out_.statistics = std::move(s);
        return true;
    }

    bool listen() {
        Listen l;
        l.where = where();
        if (!require("type") || !require("linemode")) return false;
        if (accept("transport")) {
            if (!word(l.transport, "'plain', 'gzip', 'lz4' or 'snappy'")) return false;
            if (l.transport != "plain" && l.transport != "gzip" && l.transport != "lz4" && l.transport != "snappy") {
                --pos_;
                return expected("'plain', 'gzip', 'lz4' or 'snappy'");
            }
            if (accept("ssl")) {
                l.ssl = true;
                if (!word(l.pemcert, "a PEM certificate file")) return false;
            }
        }
        while (at_word()) {
            ListenAddress a;
            a.address = tokens_[pos_++].text;
            if (!require("proto")) return false;
            if (!word(a.proto, "'tcp', 'udp' or 'unix'")) return false;
            if (a.proto != "tcp" && a.proto != "udp" && a.proto != "unix") {
                --pos_;
                return expected("'tcp', 'udp' or 'unix'");
            }
            l.addresses.push_back(std::move(a));
        }
        if (l.addresses.empty()) return expected("an address with 'proto'");
        if (!end_statement()) return false;
        // Listen sockets are polymur's options: the supervisor opens them before the rules apply, a reload keeps them.
        warn(
            "listen is not applied: polymur listens where --listen-addr (plaintext TCP), --udp-listen-addr, --pickle-listen-addr, "
            "--http-listen-addr and --https-listen-addr say" +
            std::string(l.transport != "plain" || l.ssl ? "; compressed and TLS line listeners are not implemented"
                                                        : "") +
            std::string(std::any_of(l.addresses.begin(), l.addresses.end(),
                                    [](const ListenAddress& a) { return a.proto == "unix"; })
                            ? "; unix sockets are not implemented"
                            : ""));
        out_.listens.push_back(std::move(l));
        return true;
    }

    bool include() {
        std::string pattern;
        if (!word(pattern, "a file or glob")) return false;
        if (!end_statement()) return false;
        --pos_;
        if (depth_ >= 32) return fail("include nested more than 32 deep (an include loop?)");
        if (!resolve_ || !read_) return fail("include is not available here");
        std::vector<std::string> files;
        std::string error;
        if (!resolve_(pattern, files, error)) return fail(error);
        for (const std::string& path : files) {
            std::string text;
            if (!read_(path, text, error)) return fail(error);
            Parser inner(out_, resolve_, read_, depth_ + 1);
            if (!inner.parse(text, path, error)) {
                error_ = error;
                return false;
            }
        }
        ++pos_;
        return true;
    }
};

}  // namespace

bool parse_rules_text(std::string_view text, const std::string& file, RulesConfig& out, std::string& error,
                      const IncludeResolver& resolve, const FileReader& read) {
    Parser parser(out, resolve, read, 0);
    return parser.parse(text, file, error);
}

bool parse_rules_file(const std::string& path, RulesConfig& out, std::string& error, std::string* sources) {
    FileReader read = [sources](const std::string& file, std::string& text, std::string& message) {
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            message = "cannot read '" + file + "': " + std::strerror(errno);
            return false;
        }
        std::ostringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
        if (sources) {
            // Each file as its name, its length and its text, so no two different sets of files read alike.
            *sources += file + '\n' + std::to_string(text.size()) + '\n';
            *sources += text;
        }
        return true;
    };
    IncludeResolver resolve = [](const std::string& pattern, std::vector<std::string>& files, std::string& message) {
        glob_t found {};
        int rc = glob(pattern.c_str(), 0, nullptr, &found);
        if (rc == GLOB_NOMATCH) {
            globfree(&found);
            message = "include '" + pattern + "' matches no file";
            return false;
        }
        if (rc != 0) {
            globfree(&found);
            message = "include '" + pattern + "' cannot be expanded";
            return false;
        }
        for (size_t i = 0; i < found.gl_pathc; ++i) files.emplace_back(found.gl_pathv[i]);
        globfree(&found);
        return true;
    };
    std::string text;
    if (!read(path, text, error)) return false;
    return parse_rules_text(text, path, out, error, resolve, read);
}

}  // namespace polymur::route::rules
